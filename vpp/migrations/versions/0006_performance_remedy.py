"""the operator's remedies of a suspended VPP (the performance record)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 20:00

``performance_remedy``: one row per remedy the operator records (``vpp performance remedy``,
``POST /api/v1/performance/remedies``): the programme, the local date of the remedy, a note
and who recorded it. The performance record (``bidding.performance_record``) reads it with
the settled events. Downgrade drops the table (the remedies are lost).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vpp.types import AwareDateTime

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('performance_remedy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme', sa.String(length=100), nullable=False),
    sa.Column('remedied_on', sa.Date(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('created_at', AwareDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('performance_remedy', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_performance_remedy_programme'), ['programme'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('performance_remedy', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_performance_remedy_programme'))
    op.drop_table('performance_remedy')
