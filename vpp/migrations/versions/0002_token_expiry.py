"""token expiry and rotation

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 11:20

Adds ``api_token.expires_at`` (NOT NULL, aware UTC) and ``api_token.replaced_by_id`` (the token
that a rotation issued in this one's place).

Tokens that existed before this revision get a concrete expiry, written once here so that
``vpp token list`` shows it and the check on every request is a plain comparison: their creation
time plus the role's shipped default lifetime (``[api] token_ttl_days_*`` in
``config/default.toml`` at this revision: owner 180 d, operator 90 d, grid 365 d), but never
earlier than 30 days after the upgrade. An upgrade therefore never locks a grid integration or an
owner's app out on the spot: an old token keeps working for at least 30 days, in which the
operator rotates it (``vpp token rotate``). Later changes to the configured lifetimes apply to
tokens issued after them, not to stored expiries.

Downgrade drops both columns (the expiries are lost; tokens then never expire again).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import vpp.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

#: the shipped default lifetimes at this revision, in days (see the module docstring)
LEGACY_TTL_DAYS = {"owner": 180, "operator": 90, "grid": 365}
#: an existing token stays valid at least this long after the upgrade
UPGRADE_GRACE = timedelta(days=30)


def legacy_expiry(role: str, created_at: datetime, upgraded_at: datetime) -> datetime:
    """Expiry of a token issued before expiry existed (unknown roles: the shortest lifetime)."""
    ttl = timedelta(days=LEGACY_TTL_DAYS.get(role, min(LEGACY_TTL_DAYS.values())))
    return max(created_at + ttl, upgraded_at + UPGRADE_GRACE)


def upgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', vpp.types.AwareDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('replaced_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_api_token_replaced_by_id', 'api_token', ['replaced_by_id'], ['id'])

    tokens = sa.table(
        'api_token',
        sa.column('id', sa.Integer()),
        sa.column('role', sa.String()),
        sa.column('created_at', vpp.types.AwareDateTime(timezone=True)),
        sa.column('expires_at', vpp.types.AwareDateTime(timezone=True)),
    )
    conn = op.get_bind()
    now = datetime.now(UTC)
    for row in conn.execute(sa.select(tokens.c.id, tokens.c.role, tokens.c.created_at)).all():
        conn.execute(
            tokens.update().where(tokens.c.id == row.id)
            .values(expires_at=legacy_expiry(row.role, row.created_at, now))
        )

    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.alter_column('expires_at', existing_type=vpp.types.AwareDateTime(timezone=True),
                              nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_constraint('fk_api_token_replaced_by_id', type_='foreignkey')
        batch_op.drop_column('replaced_by_id')
        batch_op.drop_column('expires_at')
