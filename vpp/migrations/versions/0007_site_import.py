"""a device's site meter reading: telemetry.site_import_kw

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 21:00

``telemetry.site_import_kw`` (float, nullable): kW at the grid connection of the site behind
which the device sits (+ import, - export), as the device reads it from its site meter (a
hybrid inverter's grid meter: Huawei SUN2000 37113, Sungrow SH 13009). Null for readings
before this revision and for devices without a site meter: settlement then keeps its
conservative floor (``bidding.export_rule``). Downgrade drops the column (the readings are
lost).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('telemetry') as batch:
        batch.add_column(sa.Column('site_import_kw', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('telemetry') as batch:
        batch.drop_column('site_import_kw')
