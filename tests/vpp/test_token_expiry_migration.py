"""Migration 0002 (token expiry) on SQLite and PostgreSQL: existing tokens get an expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine

from vpp.db import current_revision, upgrade
from vpp.types import AwareDateTime

TOKENS = sa.table(
    "api_token",
    sa.column("id", sa.Integer()), sa.column("role", sa.String()),
    sa.column("token_hash", sa.String()), sa.column("label", sa.String()),
    sa.column("created_at", AwareDateTime()), sa.column("expires_at", AwareDateTime()),
)


def test_existing_tokens_get_role_lifetime_but_at_least_30_days(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0001")
    now = datetime.now(UTC)
    recent = now - timedelta(days=10)
    ancient = now - timedelta(days=1000)
    with empty_engine.begin() as conn:
        conn.execute(TOKENS.insert(), [
            {"id": 1, "role": "grid", "token_hash": "a" * 64, "label": "", "created_at": recent},
            {"id": 2, "role": "operator", "token_hash": "b" * 64, "label": "", "created_at": recent},
            {"id": 3, "role": "owner", "token_hash": "c" * 64, "label": "", "created_at": ancient},
        ])
    upgrade(empty_engine, "0002")
    assert current_revision(empty_engine) == "0002"
    with empty_engine.begin() as conn:
        rows = {r.id: r.expires_at for r in conn.execute(sa.select(TOKENS.c.id, TOKENS.c.expires_at))}
    assert abs(rows[1] - (recent + timedelta(days=365))) < timedelta(seconds=1)
    assert abs(rows[2] - (recent + timedelta(days=90))) < timedelta(seconds=1)
    # created long ago: not expired on the spot, 30 days from the upgrade to rotate it
    assert timedelta(days=29, hours=23) < rows[3] - now < timedelta(days=30, minutes=5)
    # and the column is NOT NULL from now on
    with empty_engine.begin() as conn:
        insp = sa.inspect(conn)
        cols = {c["name"]: c for c in insp.get_columns("api_token")}
    assert cols["expires_at"]["nullable"] is False
    assert "replaced_by_id" in cols
