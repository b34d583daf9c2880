"""Device profiles a device may name: the packaged ones (``config/device_profiles/*.toml``),
``sunspec`` (batteries, discovered by scanning), and profiles owners submit through the API
(stored in ``device_profile``, validated exactly like the packaged ones by
:func:`device_adapters.profile.parse_profile`).

A stored profile submitted by an owner is visible to and usable by that owner (and operators,
who manage every owner's fleet); one submitted by an operator without an owner is usable by
everyone. Names are unique across packaged and stored profiles, so a name always means one
register map. A stored profile in use by a device cannot be deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, col, select

from device_adapters.factory import SUNSPEC
from device_adapters.profile import Profile, list_profiles, load_profile, parse_profile
from vpp.device_kinds import DeviceKind
from vpp.errors import ConfigError, ConflictError, NotFoundError, ValidationError
from vpp.models import AuditLog, Device, DeviceProfileRow

#: kinds a SunSpec scan can produce (``device_adapters.sunspec.build_profile``)
SUNSPEC_KINDS = frozenset({DeviceKind.BATTERY, DeviceKind.PV_INVERTER})


def _visible(row: DeviceProfileRow, owner_id: int | None) -> bool:
    """``owner_id`` ``None``: an operator (sees everything)."""
    return owner_id is None or row.owner_id in (None, owner_id)


def stored_profile(session: Session, name: str) -> DeviceProfileRow | None:
    return session.exec(select(DeviceProfileRow).where(DeviceProfileRow.name == name)).first()


def check_device_profile(session: Session, name: str, kind: DeviceKind | str,
                         owner_id: int) -> None:
    """Refuse a profile the owner cannot use for a device of ``kind``: unknown (or another
    owner's), or for another kind. :class:`ValidationError` names the profile and the reason."""
    kind = DeviceKind(kind)
    if name == SUNSPEC:
        if kind not in SUNSPEC_KINDS:
            raise ValidationError(
                f"profile {SUNSPEC!r} is for batteries and PV inverters, not a {kind.value}")
        return
    prof_kind = _profile_kind(session, name, owner_id)
    if prof_kind is not kind:
        raise ValidationError(
            f"profile {name!r} is for a {prof_kind.value}, not a {kind.value}")


def _profile_kind(session: Session, name: str, owner_id: int) -> DeviceKind:
    if name in list_profiles():
        try:
            return load_profile(name).kind
        except ConfigError as exc:
            raise ValidationError(f"profile {name!r} cannot be used: {exc}") from None
    row = stored_profile(session, name)
    if row is not None and _visible(row, owner_id):
        return DeviceKind(row.kind)
    yours = [r.name for r in list_stored(session, owner_id)]
    raise ValidationError(
        f"unknown device profile {name!r} (packaged: {', '.join(list_profiles())}, "
        f"{SUNSPEC!r} for SunSpec batteries and PV inverters"
        + (f"; yours: {', '.join(yours)}" if yours else "") + ")")


def list_stored(session: Session, owner_id: int | None) -> list[DeviceProfileRow]:
    """Stored profiles visible to ``owner_id`` (``None``: an operator, all of them)."""
    stmt = select(DeviceProfileRow).order_by(col(DeviceProfileRow.name))
    if owner_id is not None:
        stmt = stmt.where(col(DeviceProfileRow.owner_id).is_(None)
                          | (DeviceProfileRow.owner_id == owner_id))
    return list(session.exec(stmt).all())


def get_stored(session: Session, name: str, owner_id: int | None) -> DeviceProfileRow:
    row = stored_profile(session, name)
    if row is None or not _visible(row, owner_id):
        raise NotFoundError(f"no stored device profile {name!r}")
    return row


def submit_profile(session: Session, data: dict[str, Any], owner_id: int | None,
                   actor: str) -> DeviceProfileRow:
    """Validate ``data`` like a packaged profile file and store it under its ``name``."""
    profile = parse_profile(data, "profile")  # ConfigError: key and reason
    if profile.name == SUNSPEC or profile.name in list_profiles():
        raise ConflictError(f"profile name {profile.name!r} is taken by a packaged profile")
    if not profile.name or "/" in profile.name or profile.name.startswith("."):
        raise ValidationError(f"profile.name: invalid profile name {profile.name!r}")
    if stored_profile(session, profile.name) is not None:
        raise ConflictError(f"profile name {profile.name!r} is already taken")
    row = DeviceProfileRow(name=profile.name, kind=profile.kind.value, owner_id=owner_id,
                           body=profile.model_dump(mode="json"))
    session.add(row)
    session.flush()
    session.add(AuditLog(actor=actor, action="profile_submitted", subject=f"profile:{row.name}",
                         detail={"kind": row.kind, "owner_id": owner_id}))
    return row


def delete_profile(session: Session, name: str, owner_id: int | None, actor: str) -> None:
    """Remove a stored profile no device uses (a device naming it could not be polled)."""
    row = get_stored(session, name, owner_id)
    users = session.exec(select(Device.id).where(Device.profile == name)).all()
    if users:
        raise ConflictError(f"profile {name!r} is used by {len(users)} device(s) "
                            f"(first: device {users[0]}); change their profile first")
    session.delete(row)
    session.add(AuditLog(actor=actor, action="profile_deleted", subject=f"profile:{name}"))


def load_stored(session: Session, names: Iterable[str]) -> dict[str, Profile]:
    """The stored profiles among ``names``, parsed (packaged names and ``sunspec`` are left to
    :func:`device_adapters.factory.resolve_profile`)."""
    wanted = {n for n in names if n != SUNSPEC} - set(list_profiles())
    if not wanted:
        return {}
    rows = session.exec(select(DeviceProfileRow).where(
        col(DeviceProfileRow.name).in_(sorted(wanted)))).all()
    return {r.name: parse_profile(r.body, f"stored profile {r.name}") for r in rows}
