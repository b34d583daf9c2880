"""Build adapters for enrolled devices: resolve the profile (a file, or ``sunspec`` by scanning
the device) and wire it to the gateway's client."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from device_adapters.adapter import ProfileAdapter
from device_adapters.errors import ExceptionReply
from device_adapters.modbus_client import GatewayClient
from device_adapters.profile import Profile, load_profile
from device_adapters.sunspec import build_profile, scan
from vpp.device_kinds import DeviceKind
from vpp.timeutil import now as tz_now

SUNSPEC = "sunspec"


async def resolve_profile(
    client: GatewayClient, unit_id: int, name: str, profiles_dir: Path | None = None,
    kind: DeviceKind | None = None,
) -> Profile:
    """The profile named ``name``; for ``sunspec`` scan the device's model chain (a battery's
    or a PV inverter's map, by the models found and the device's ``kind``)."""
    if name != SUNSPEC:
        return load_profile(name, profiles_dir)

    async def read(address: int, count: int) -> list[int]:
        try:
            return await client.read(unit_id, "holding", address, count)
        except ExceptionReply:
            raise

    chain, end = await scan(read)
    return build_profile(chain, kind=kind, end_address=end)


async def make_adapter(
    client: GatewayClient,
    *,
    device_id: int,
    unit_id: int,
    kind: DeviceKind | str,
    profile: str | Profile,
    rated_power_kw: float,
    min_setpoint_kw: float,
    max_setpoint_kw: float,
    params: dict[str, Any] | None = None,
    profiles_dir: Path | None = None,
    clock: Callable[[], datetime] | None = None,
) -> ProfileAdapter:
    """``clock``: what stamps the readings (the daemon's clock; default the wall clock)."""
    prof = profile if isinstance(profile, Profile) else await resolve_profile(
        client, unit_id, profile, profiles_dir, DeviceKind(kind))
    return ProfileAdapter(
        client, prof, device_id=device_id, unit_id=unit_id, kind=DeviceKind(kind),
        rated_power_kw=rated_power_kw, min_setpoint_kw=min_setpoint_kw,
        max_setpoint_kw=max_setpoint_kw, params=params,
        clock=clock if clock is not None else tz_now,
    )
