"""Bearer-token authentication against :class:`vpp.models.ApiToken`.

Only the SHA-256 of a token is stored (:mod:`vpp.security`); the presented token is hashed, the
row found by its hash and compared again in constant time. Revoked and expired tokens are refused
(expiry is wall-clock UTC, :mod:`vpp.tokens`). Tokens are never logged: error messages name the
token id at most.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from sqlmodel import Session, select

from vpp.api.context import PARTS
from vpp.api.errors import AuthError
from vpp.errors import ValidationError
from vpp.models import ApiToken, Role, utcnow
from vpp.security import TOKEN_PREFIX, hash_token, token_matches
from vpp.tokens import TokenState, token_state

log = logging.getLogger("vpp.api")


@dataclass(frozen=True)
class Principal:
    """Who is calling: role, owner (owner tokens only), the token's id (for the audit log) and
    when the token expires (aware UTC)."""

    role: Role
    owner_id: int | None
    token_id: int
    expires_at: datetime

    @property
    def actor(self) -> str:
        return f"{self.role.value}:token{self.token_id}"


PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("vpp.principal", Principal)


def _is_header_text(token: str) -> bool:
    """ASCII header text (printable, space, tab): what a token, or any honest guess at one, is.
    Anything else (bytes above 0x7F arrive as surrogate escapes) cannot even be hashed."""
    return all(" " <= c <= "~" or c == "\t" for c in token)


def bearer_token(request: web.Request) -> str:
    """The presented bearer token; AuthError (401) if missing or not a Bearer header,
    ValidationError (400, logged as one line) if it holds bytes no token can have (not ASCII,
    or control characters); any other wrong token is "unknown" (401)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise AuthError("missing bearer token (send 'Authorization: Bearer <token>')")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed Authorization header (expected 'Bearer <token>')")
    token = token.strip()
    if not _is_header_text(token):
        # bytes that are not ASCII reach us as surrogate escapes; never echo or log the value
        log.warning("refused %s %s from %s: invalid characters in the bearer token",
                    request.method, request.path, request.remote)
        raise ValidationError("malformed Authorization header: a bearer token is printable "
                              "ASCII (found a non-ASCII or control character)")
    return token


def lookup_token(session: Session, token: str, now: datetime | None = None) -> Principal:
    """The principal of a presented token at ``now`` (default: the wall clock), else AuthError."""
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    # The hash lookup finds the row; the constant-time comparison is what decides.
    if row is None or not token_matches(token, row.token_hash):
        raise AuthError("unknown token")
    state = token_state(row, now or utcnow())
    if state is TokenState.REVOKED:
        raise AuthError(f"token {row.id} has been revoked")
    if state is TokenState.EXPIRED:
        raise AuthError(_expired_message(row))
    try:
        role = Role(row.role)
    except ValueError:
        raise AuthError(f"token {row.id} has an unknown role") from None
    return Principal(role=role, owner_id=row.owner_id, token_id=int(row.id or 0),
                     expires_at=row.expires_at)


def _expired_message(row: ApiToken) -> str:
    when = row.expires_at.isoformat(timespec="seconds")
    if row.replaced_by_id is not None:
        return (f"token {row.id} expired at {when}: it was rotated, "
                f"use its replacement (token {row.replaced_by_id})")
    return f"token {row.id} expired at {when}; ask the operator for a new token"


async def authenticate(request: web.Request) -> Principal:
    """The caller's principal, or :class:`AuthError` (401)."""
    cached = request.get(PRINCIPAL_KEY)
    if isinstance(cached, Principal):
        return cached
    token = bearer_token(request)
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise AuthError("unknown token")
    principal = await request.app[PARTS].db.run(lookup_token, token)
    request[PRINCIPAL_KEY] = principal
    return principal
