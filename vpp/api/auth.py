"""Bearer-token authentication against :class:`vpp.models.ApiToken`.

Only the SHA-256 of a token is stored (:mod:`vpp.security`); the presented token is hashed, the
row found by its hash and compared again in constant time. Revoked tokens are refused. Tokens are
never logged: error messages name the token id at most.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlmodel import Session, select

from vpp.api.context import SERVICES
from vpp.api.errors import AuthError
from vpp.models import ApiToken, Role
from vpp.security import TOKEN_PREFIX, hash_token, token_matches


@dataclass(frozen=True)
class Principal:
    """Who is calling: role, owner (owner tokens only) and the token's id (for the audit log)."""

    role: Role
    owner_id: int | None
    token_id: int

    @property
    def actor(self) -> str:
        return f"{self.role.value}:token{self.token_id}"


PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("vpp.principal", Principal)


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise AuthError("missing bearer token (send 'Authorization: Bearer <token>')")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed Authorization header (expected 'Bearer <token>')")
    return token.strip()


def lookup_token(session: Session, token: str) -> Principal:
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    # The hash lookup finds the row; the constant-time comparison is what decides.
    if row is None or not token_matches(token, row.token_hash):
        raise AuthError("unknown token")
    if row.revoked_at is not None:
        raise AuthError(f"token {row.id} has been revoked")
    try:
        role = Role(row.role)
    except ValueError:
        raise AuthError(f"token {row.id} has an unknown role") from None
    return Principal(role=role, owner_id=row.owner_id, token_id=int(row.id or 0))


async def authenticate(request: web.Request) -> Principal:
    """The caller's principal, or :class:`AuthError` (401)."""
    cached = request.get(PRINCIPAL_KEY)
    if isinstance(cached, Principal):
        return cached
    token = bearer_token(request)
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise AuthError("unknown token")
    principal = await request.app[SERVICES].db.run(lookup_token, token)
    request[PRINCIPAL_KEY] = principal
    return principal
