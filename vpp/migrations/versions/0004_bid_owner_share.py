"""owner shares of a bid in their own table

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 13:00

``bid_owner_share``: one row per owner of a bid (``declared_kw``, ``share_fraction``,
``limited_by``, the quantile rule's ``expected_response_kw`` and ``penalty_probability``, the
no-history rule's ``envelope_kw``), unique by (bid, owner). Until now they were the list
``bid.detail["owners"]`` (JSON).

Upgrade MOVES every bid's shares out of the JSON into rows and removes ``owners`` from its
``detail``. A share written before the offer recorded ``share``/``limited_by`` (only
``owner_id`` and ``declared_kw``) gets ``share_fraction`` = its kW over the bid's declared kW
and an empty ``limited_by``. Downgrade writes the rows back into ``detail["owners"]`` (the
keys the offer wrote: ``owner_id``, ``declared_kw``, ``share``, ``limited_by``, and
``expected_response_kw``/``p_penalty`` or ``envelope_kw`` where set) and drops the table.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

BID = sa.table('bid', sa.column('id', sa.Integer()), sa.column('declared_kw', sa.Float()),
               sa.column('detail', sa.JSON()))
SHARE_COLUMNS = ('bid_id', 'owner_id', 'declared_kw', 'share_fraction', 'limited_by',
                 'expected_response_kw', 'penalty_probability', 'envelope_kw')


def _share_table() -> sa.TableClause:
    types: dict[str, Any] = {'bid_id': sa.Integer(), 'owner_id': sa.Integer(),
                             'limited_by': sa.String()}
    return sa.table('bid_owner_share',
                    *(sa.column(c, types.get(c, sa.Float())) for c in SHARE_COLUMNS))


def _opt(row: dict[str, Any], key: str) -> float | None:
    return None if row.get(key) is None else float(row[key])


def _row(bid_id: int, bid_kw: float, o: dict[str, Any]) -> dict[str, Any]:
    """A ``bid_owner_share`` row from one entry of the old ``detail["owners"]``."""
    kw = float(o['declared_kw'])
    share = o.get('share')
    return {'bid_id': bid_id, 'owner_id': int(o['owner_id']), 'declared_kw': kw,
            'share_fraction': float(share) if share is not None
            else (kw / bid_kw if bid_kw > 0 else 0.0),
            'limited_by': str(o.get('limited_by') or ''),
            'expected_response_kw': _opt(o, 'expected_response_kw'),
            'penalty_probability': _opt(o, 'p_penalty'), 'envelope_kw': _opt(o, 'envelope_kw')}


def upgrade() -> None:
    op.create_table('bid_owner_share',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bid_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('declared_kw', sa.Float(), nullable=False),
    sa.Column('share_fraction', sa.Float(), nullable=False),
    sa.Column('limited_by', sa.String(), nullable=False),
    sa.Column('expected_response_kw', sa.Float(), nullable=True),
    sa.Column('penalty_probability', sa.Float(), nullable=True),
    sa.Column('envelope_kw', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['bid_id'], ['bid.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['owner.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('bid_id', 'owner_id', name='uq_bid_owner_share')
    )
    with op.batch_alter_table('bid_owner_share', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bid_owner_share_bid_id'), ['bid_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bid_owner_share_owner_id'), ['owner_id'],
                              unique=False)
    conn = op.get_bind()
    shares = _share_table()
    for bid_id, bid_kw, detail in conn.execute(sa.select(BID.c.id, BID.c.declared_kw,
                                                         BID.c.detail)).all():
        if not isinstance(detail, dict) or 'owners' not in detail:
            continue
        rows = [_row(bid_id, float(bid_kw), o) for o in detail['owners'] or []]
        if rows:
            conn.execute(shares.insert(), rows)
        rest = {k: v for k, v in detail.items() if k != 'owners'}
        conn.execute(BID.update().where(BID.c.id == bid_id).values(detail=rest))


def downgrade() -> None:
    conn = op.get_bind()
    shares = _share_table()
    by_bid: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in conn.execute(sa.select(shares).order_by(shares.c.bid_id, shares.c.owner_id)).all():
        o: dict[str, Any] = {'owner_id': r.owner_id, 'declared_kw': r.declared_kw,
                             'share': r.share_fraction, 'limited_by': r.limited_by}
        if r.expected_response_kw is not None or r.penalty_probability is not None:
            o |= {'expected_response_kw': r.expected_response_kw, 'p_penalty': r.penalty_probability}
        if r.envelope_kw is not None:
            o['envelope_kw'] = r.envelope_kw
        by_bid[r.bid_id].append(o)
    for bid_id, owners in by_bid.items():
        detail = conn.execute(sa.select(BID.c.detail).where(BID.c.id == bid_id)).scalar_one()
        conn.execute(BID.update().where(BID.c.id == bid_id)
                     .values(detail={**(detail or {}), 'owners': owners}))
    with op.batch_alter_table('bid_owner_share', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bid_owner_share_owner_id'))
        batch_op.drop_index(batch_op.f('ix_bid_owner_share_bid_id'))
    op.drop_table('bid_owner_share')
