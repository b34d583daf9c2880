"""OCPP gateways: a gateway's protocol and a charge point's password hash

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 14:00

* ``gateway.protocol``: ``modbus`` (every existing gateway) or ``ocpp`` (a charge point that
  connects to the daemon's central system, :mod:`vpp.ocpp`). For an OCPP gateway ``host`` holds
  the charge point's identity (the last segment of its WebSocket URL) and ``port`` is 0, so the
  existing endpoint uniqueness (host, port) makes identities unique; port 0 is never a Modbus
  port, so no identity can collide with a Modbus endpoint.
* ``gateway.ocpp_password_hash``: the charge point's HTTP Basic password (OCPP security profile
  1/2), salted PBKDF2 (:mod:`vpp.ocpp_gateways`); null for Modbus gateways.

Downgrade drops both columns; OCPP gateways must be removed first (refused otherwise, since
their rows would turn into Modbus gateways at port 0).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('gateway') as batch:
        batch.add_column(sa.Column('protocol', sa.String(length=20), nullable=False,
                                   server_default='modbus'))
        batch.add_column(sa.Column('ocpp_password_hash', sa.String(length=200), nullable=True))


def downgrade() -> None:
    n = op.get_bind().execute(sa.text(
        "SELECT COUNT(*) FROM gateway WHERE protocol <> 'modbus'")).scalar()
    if n:
        raise RuntimeError(f"{n} OCPP gateway(s) registered: remove them before downgrading "
                           "below 0005")
    with op.batch_alter_table('gateway') as batch:
        batch.drop_column('ocpp_password_hash')
        batch.drop_column('protocol')
