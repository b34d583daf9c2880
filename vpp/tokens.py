"""API token lifecycle: issue (with an expiry), rotate (with a grace period), revoke.

Every token expires: ``expires_at`` = issue time + the role's ``[api] token_ttl_days``. A
rotation issues a new token with the same role, owner and label, records it in the old one's
``replaced_by_id`` and brings the old one's expiry forward to the end of the grace period
(``[api] token_rotation_grace_hours`` unless given), never later than it already was. A token
can be rotated once; rotate its replacement next time. Revocation ends a token at once.

Expiry is wall-clock time (UTC), never a simulation clock: it is a security property. Only the
SHA-256 of a token is stored (:mod:`vpp.security`); every change is written to the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session

from vpp.config import ApiSettings
from vpp.errors import ConflictError, NotFoundError, ValidationError
from vpp.models import ApiToken, AuditLog, Owner, Role, utcnow
from vpp.security import hash_token, new_token


class TokenState(StrEnum):
    ACTIVE = "active"
    ROTATED = "rotated"  # replaced, still valid until the end of its grace period
    EXPIRED = "expired"
    REVOKED = "revoked"


def token_state(row: ApiToken, now: datetime) -> TokenState:
    """Whether ``row`` is usable at ``now`` (aware UTC), and if not, why."""
    if row.revoked_at is not None:
        return TokenState.REVOKED
    if row.expires_at <= now:
        return TokenState.EXPIRED
    return TokenState.ROTATED if row.replaced_by_id is not None else TokenState.ACTIVE


def ttl_for(role: Role, api: ApiSettings) -> timedelta:
    """A newly issued token's lifetime for ``role`` (``[api] token_ttl_days``)."""
    return timedelta(days=getattr(api.token_ttl_days, role.value))


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValidationError(
            f"unknown role {role!r} (valid: {', '.join(r.value for r in Role)})"
        ) from None


def issue_token(
    session: Session, role: Role | str, owner: Owner | None = None, label: str = "", *,
    api: ApiSettings | None = None, now: datetime | None = None, actor: str = "cli",
) -> tuple[ApiToken, str]:
    """Create a bearer token; returns the row and the clear token (shown once, never stored).

    ``api`` gives the lifetimes (default: the shipped defaults); ``now`` the issue time.
    """
    role = _role(role)
    if role is Role.OWNER and owner is None:
        raise ValidationError("an owner token needs an owner")
    if role is not Role.OWNER and owner is not None:
        raise ValidationError(f"a {role.value} token cannot belong to an owner")
    issued = now or utcnow()
    clear = new_token()
    row = ApiToken(
        role=role.value, owner_id=owner.id if owner else None, token_hash=hash_token(clear),
        label=label, created_at=issued, expires_at=issued + ttl_for(role, api or ApiSettings()),
    )
    session.add(row)
    session.flush()
    session.add(AuditLog(
        actor=actor, action="token_issued", subject=f"token:{row.id}",
        detail={"role": role.value, "owner_id": row.owner_id, "label": label,
                "expires_at": row.expires_at.isoformat()},
    ))
    return row, clear


def get_token(session: Session, token_id: int, owner_id: int | None = None) -> ApiToken:
    """The token ``token_id`` (when ``owner_id`` is given: only if it is that owner's)."""
    row = session.get(ApiToken, token_id)
    if row is None or (owner_id is not None and row.owner_id != owner_id):
        raise NotFoundError(f"no token {token_id}")
    return row


@dataclass(frozen=True)
class Rotation:
    """A rotation's outcome: the retired token, its replacement and the clear new token."""

    old: ApiToken
    new: ApiToken
    clear: str


def rotate_token(
    session: Session, token_id: int, *, api: ApiSettings | None = None,
    grace: timedelta | None = None, now: datetime | None = None, actor: str = "cli",
    owner_id: int | None = None,
) -> Rotation:
    """Issue a replacement for ``token_id`` and retire it after ``grace`` (default: configured).

    Refused (:class:`ConflictError`) for a revoked, expired or already rotated token.
    """
    api = api or ApiSettings()
    at = now or utcnow()
    old = get_token(session, token_id, owner_id)
    state = token_state(old, at)
    if state is TokenState.ROTATED:
        raise ConflictError(
            f"token {old.id} was already rotated (its replacement is token {old.replaced_by_id})"
        )
    if state is not TokenState.ACTIVE:
        raise ConflictError(f"token {old.id} is {state.value}; issue a new token instead")
    if grace is None:
        grace = timedelta(hours=api.token_rotation_grace_hours)
    if grace < timedelta(0):
        raise ValidationError("the grace period cannot be negative")
    owner = session.get(Owner, old.owner_id) if old.owner_id is not None else None
    new, clear = issue_token(session, old.role, owner, old.label, api=api, now=at, actor=actor)
    old.replaced_by_id = new.id
    old.expires_at = min(old.expires_at, at + grace)
    session.add(old)
    session.add(AuditLog(
        actor=actor, action="token_rotated", subject=f"token:{old.id}",
        detail={"replaced_by": new.id, "old_expires_at": old.expires_at.isoformat()},
    ))
    return Rotation(old=old, new=new, clear=clear)


def revoke_token(
    session: Session, token_id: int, *, actor: str = "cli", owner_id: int | None = None
) -> ApiToken:
    """Revoke ``token_id`` at once (idempotent)."""
    row = get_token(session, token_id, owner_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        session.add(AuditLog(actor=actor, action="token_revoked", subject=f"token:{row.id}"))
    return row
