"""several ``vpp serve`` processes over PostgreSQL: workers, gateway leases, device commands

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 03:30

* ``cluster_worker``: each process of a cluster (:mod:`vpp.cluster`) and its last heartbeat.
* ``gateway_lease``: the poller worker that owns each gateway, until when, and the epoch (the
  fencing token) that moves at every change of owner.
* ``device_command``: setpoints from the planner to the worker owning the device's gateway,
  with their outcome (confirmed / failed, written and read-back kW).

New tables only; a single-process daemon (``cluster.role = "all"``) leaves them empty.
Downgrade drops them.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import vpp.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, vpp.types.AwareDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        'cluster_worker',
        sa.Column('worker_id', sa.String(length=100), nullable=False),
        sa.Column('role', sa.String(length=20), nullable=False),
        _ts('started_at'), _ts('heartbeat_at'),
        sa.PrimaryKeyConstraint('worker_id'))
    op.create_table(
        'gateway_lease',
        sa.Column('gateway_id', sa.Integer(), nullable=False),
        sa.Column('owner', sa.String(length=100), nullable=False),
        sa.Column('epoch', sa.BigInteger(), nullable=False),
        _ts('expires_at'),
        sa.ForeignKeyConstraint(['gateway_id'], ['gateway.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('gateway_id'))
    op.create_table(
        'device_command',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=False),
        sa.Column('gateway_id', sa.Integer(), nullable=False),
        sa.Column('setpoint_kw', sa.Float(), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        _ts('created_at'),
        sa.Column('claimed_by', sa.String(length=100), nullable=True),
        sa.Column('epoch', sa.BigInteger(), nullable=True),
        _ts('claimed_at', True), _ts('done_at', True),
        sa.Column('written_kw', sa.Float(), nullable=True),
        sa.Column('readback_kw', sa.Float(), nullable=True),
        sa.Column('clamped', sa.Boolean(), nullable=False),
        sa.Column('verified', sa.Boolean(), nullable=False),
        sa.Column('written', sa.Boolean(), nullable=False),
        sa.Column('error', sa.String(length=2000), nullable=True),
        sa.ForeignKeyConstraint(['device_id'], ['device.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['gateway_id'], ['gateway.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_device_command_gateway_status', 'device_command',
                    ['gateway_id', 'status'])


def downgrade() -> None:
    op.drop_index('ix_device_command_gateway_status', table_name='device_command')
    op.drop_table('device_command')
    op.drop_table('gateway_lease')
    op.drop_table('cluster_worker')
