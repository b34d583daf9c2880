"""Token expiry and rotation through the real aiohttp server, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select

from tests.vpp.api.conftest import Api
from tests.vpp.daemon.harness import auth
from vpp import fleet, tokens
from vpp.db import session_scope
from vpp.models import ApiToken, AuditLog, Role
from vpp.security import hash_token


async def _req(api: Api, method: str, path: str, token: str | None = None):  # noqa: ANN202
    async with api.http.request(method, api.url + path,
                                headers=auth(token) if token else {}) as r:
        return r.status, await r.json()


def _row(api: Api, token: str) -> ApiToken:
    with session_scope(api.engine) as s:
        return s.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).one()


async def test_tokens_are_issued_with_the_role_lifetime(api_both: Api) -> None:
    api = api_both
    now = datetime.now(UTC)
    for token, days in ((api.tokens.operator, 90), (api.tokens.owner, 180), (api.tokens.grid, 365)):
        row = _row(api, token)
        assert abs(row.expires_at - (row.created_at + timedelta(days=days))) < timedelta(seconds=1)
        assert row.created_at <= now


async def test_expired_token_is_refused_with_its_expiry(api_both: Api) -> None:
    api = api_both
    long_ago = datetime.now(UTC) - timedelta(days=400)
    with session_scope(api.engine) as s:
        row, clear = fleet.issue_token(s, Role.GRID, None, "old grid link", now=long_ago)
        token_id, expired_at = row.id, row.expires_at
    status, body = await _req(api, "GET", "/api/v1/me", clear)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert body["error"]["message"] == (
        f"token {token_id} expired at {expired_at.isoformat(timespec='seconds')}; "
        "ask the operator for a new token")
    # an unexpired token of the same role still works
    status, _ = await _req(api, "GET", "/api/v1/me", api.tokens.grid)
    assert status == 200


async def test_owner_rotates_own_token_old_one_works_through_the_grace(api_both: Api) -> None:
    api = api_both
    before = datetime.now(UTC)
    status, body = await _req(api, "POST", "/api/v1/tokens/rotate", api.tokens.owner)
    assert status == 201, body
    new = body["token"]
    old_row, new_row = _row(api, api.tokens.owner), _row(api, new)
    assert body["token_id"] == new_row.id and body["replaces_token_id"] == old_row.id
    assert (new_row.role, new_row.owner_id, new_row.label) == ("owner", api.tokens.owner_id, "mall")
    assert old_row.replaced_by_id == new_row.id
    grace = old_row.expires_at - before
    assert timedelta(hours=168) - timedelta(seconds=5) < grace <= timedelta(hours=168, seconds=5)
    # both work during the grace period; the new one sees the same owner
    for t in (api.tokens.owner, new):
        status, me = await _req(api, "GET", "/api/v1/me", t)
        assert status == 200 and me["owner_id"] == api.tokens.owner_id
    # listing shows the states, never a value
    status, listed = await _req(api, "GET", "/api/v1/tokens", new)
    assert status == 200
    states = {t["id"]: t["state"] for t in listed}
    assert states == {old_row.id: "rotated", new_row.id: "active"}  # only this owner's tokens
    assert "token_hash" not in listed[0] and new not in str(listed)
    # a token is rotated once; its replacement is rotated next time
    status, err = await _req(api, "POST", "/api/v1/tokens/rotate", api.tokens.owner)
    assert status == 409
    assert err["error"]["message"] == (
        f"token {old_row.id} was already rotated (its replacement is token {new_row.id})")
    with session_scope(api.engine) as s:
        actions = [a.action for a in s.exec(select(AuditLog)).all()]
    assert "token_rotated" in actions


async def test_rotated_token_stops_after_the_grace_and_names_its_replacement(api: Api) -> None:
    with session_scope(api.engine) as s:
        old = _row(api, api.tokens.grid)
        r = tokens.rotate_token(s, int(old.id or 0), grace=timedelta(0))
        new_id = r.new.id
    status, body = await _req(api, "GET", "/api/v1/me", api.tokens.grid)
    assert status == 401
    assert body["error"]["message"].endswith(f"it was rotated, use its replacement (token {new_id})")
    status, _ = await _req(api, "GET", "/api/v1/me", r.clear)
    assert status == 200


async def test_owner_revokes_own_token_but_not_anothers(api: Api) -> None:
    other = _row(api, api.tokens.other_owner)
    status, body = await _req(api, "POST", f"/api/v1/tokens/{other.id}/revoke", api.tokens.owner)
    assert status == 404 and body["error"]["message"] == f"no token {other.id}"
    mine = _row(api, api.tokens.owner)
    status, body = await _req(api, "POST", f"/api/v1/tokens/{mine.id}/revoke", api.tokens.owner)
    assert status == 200 and body["state"] == "revoked"
    status, body = await _req(api, "GET", "/api/v1/me", api.tokens.owner)
    assert status == 401 and "revoked" in body["error"]["message"]
    # the grid may rotate its own token but not list or revoke tokens
    status, _ = await _req(api, "GET", "/api/v1/tokens", api.tokens.grid)
    assert status == 403
