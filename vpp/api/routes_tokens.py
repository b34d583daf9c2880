"""API tokens: list (operators: all, owners: their own), rotate the calling token, revoke.

Rotation is self-service: whoever holds a valid token can exchange it for a new one with the same
role, owner and label and a fresh lifetime (``[api] token_ttl_days``); the old one keeps working
for ``[api] token_rotation_grace_hours`` so that its users can switch. Issuing a token for
someone else stays with the operator's CLI (``vpp owner token``, ``vpp token create``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, col, select

from vpp import tokens
from vpp.api.context import PARTS
from vpp.api.routing import Call, Route, roles
from vpp.models import ApiToken, Role, utcnow

ANY = roles(Role.OPERATOR, Role.OWNER, Role.GRID)
OP_OWNER = roles(Role.OPERATOR, Role.OWNER)


class TokenOut(BaseModel):
    """A token's metadata (never its value); times aware UTC."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    role: str
    owner_id: int | None
    label: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    replaced_by_id: int | None
    state: str  # active | rotated (valid until expires_at) | expired | revoked


class TokenRotated(BaseModel):
    """The new token (shown once, store it now) and when the old one stops working."""

    token: str
    token_id: int
    expires_at: datetime
    replaces_token_id: int
    old_token_expires_at: datetime


def _out(row: ApiToken, now: datetime) -> TokenOut:
    return TokenOut.model_validate(
        {**row.model_dump(exclude={"token_hash"}), "state": tokens.token_state(row, now).value}
    )


async def list_tokens(call: Call) -> list[TokenOut]:
    owner_id = call.owner_scope()

    def work(s: Session) -> list[TokenOut]:
        q = select(ApiToken).order_by(col(ApiToken.id))
        if owner_id is not None:
            q = q.where(ApiToken.owner_id == owner_id)
        now = utcnow()
        return [_out(r, now) for r in s.exec(q).all()]

    return await call.request.app[PARTS].db.run(work)


async def rotate_own_token(call: Call) -> TokenRotated:
    who = call.who
    api = call.request.app[PARTS].settings.api

    def work(s: Session) -> TokenRotated:
        r = tokens.rotate_token(s, who.token_id, api=api, actor=who.actor)
        return TokenRotated(token=r.clear, token_id=int(r.new.id or 0),
                            expires_at=r.new.expires_at, replaces_token_id=int(r.old.id or 0),
                            old_token_expires_at=r.old.expires_at)

    return await call.request.app[PARTS].db.run(work)


async def revoke(call: Call) -> TokenOut:
    token_id = int(call.path["token_id"])
    owner_id = call.owner_scope()
    actor = call.who.actor

    def work(s: Session) -> TokenOut:
        row = tokens.revoke_token(s, token_id, actor=actor, owner_id=owner_id)
        return _out(row, utcnow())

    return await call.request.app[PARTS].db.run(work)


ROUTES = [
    Route("GET", "/api/v1/tokens", list_tokens, "API tokens (owners: their own), never values",
          "tokens", OP_OWNER, response=list[TokenOut]),
    Route("POST", "/api/v1/tokens/rotate", rotate_own_token,
          "Exchange the calling token for a new one; the old one expires after the grace period",
          "tokens", ANY, response=TokenRotated, status=201, raises=frozenset({409})),
    Route("POST", "/api/v1/tokens/{token_id}/revoke", revoke,
          "Revoke a token at once (owners: their own)", "tokens", OP_OWNER, response=TokenOut),
]
