"""fleet revision counter and owner-submitted device profiles

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 11:30

* ``fleet_revision``: one row (id 1) whose ``revision`` moves with every committed change to
  gateways, devices and stored profiles (:func:`vpp.models._bump_fleet_revision`); a running
  daemon compares it once per poll cycle and reloads its fleet when it moved.
* ``device_profile``: device profiles submitted through the API (``body`` is the profile data,
  validated like ``config/device_profiles/*.toml``), unique by name.

Gateway ``enrolment_state`` and device ``status`` gain the value ``retired`` (a string column:
no schema change). Downgrade drops both tables (stored profiles are lost; devices that use one
then fail to load, with the reason, until their profile is changed).
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import vpp.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('fleet_revision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(sa.table('fleet_revision', sa.column('id', sa.Integer()),
                            sa.column('revision', sa.BigInteger())),
                   [{'id': 1, 'revision': 0}])
    op.create_table('device_profile',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('created_at', vpp.types.AwareDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('device_profile', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_profile_name'), ['name'], unique=True)
        batch_op.create_index(batch_op.f('ix_device_profile_owner_id'), ['owner_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('device_profile', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_profile_owner_id'))
        batch_op.drop_index(batch_op.f('ix_device_profile_name'))
    op.drop_table('device_profile')
    op.drop_table('fleet_revision')
