"""In-process adapter: the :class:`~device_adapters.protocol.DeviceAdapter` protocol directly on
a physics model, without Modbus (for city-scale scenarios and fast tests).

It applies the same safety rules as the Modbus adapter: setpoints are clamped to the declared
limits and reported; the read-back is the power the physics actually draws; ``release`` returns
the device to its own behaviour; an aggregator lease releases it when no new setpoint arrives
within ``lease_s`` (checked by :meth:`heartbeat`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from device_adapters.flex import flexibility
from device_adapters.protocol import DeviceState, SetpointResult, clamp_setpoint
from sim.device import Clock
from sim.physics.factory import Physics, make_physics
from vpp.device_kinds import DeviceKind


class InProcessAdapter:
    def __init__(
        self, device_id: int, kind: DeviceKind, physics: Physics, clock: Clock, *,
        min_setpoint_kw: float, max_setpoint_kw: float, params: dict[str, Any] | None = None,
        lease_s: float = 1200.0,
    ) -> None:
        self.device_id = device_id
        self.kind = kind
        self.physics = physics
        self.clock = clock
        self.min_setpoint_kw = min_setpoint_kw
        self.max_setpoint_kw = max_setpoint_kw
        self.params = dict(params or {})
        self.lease_s = lease_s
        self.setpoint_kw: float | None = None
        self._set_at: datetime | None = None
        self._last = clock.now()
        self.physics.step(0.0, None)

    @classmethod
    def create(
        cls, device_id: int, kind: DeviceKind | str, rated_power_kw: float,
        min_setpoint_kw: float, max_setpoint_kw: float, params: dict[str, Any] | None,
        clock: Clock, seed: int = 0,
    ) -> InProcessAdapter:
        kind = DeviceKind(kind)
        return cls(device_id, kind, make_physics(kind, rated_power_kw, params, seed), clock,
                   min_setpoint_kw=min_setpoint_kw, max_setpoint_kw=max_setpoint_kw,
                   params=params)

    def _advance(self) -> None:
        now = self.clock.now()
        dt = max(0.0, (now - self._last).total_seconds())
        set_time = getattr(self.physics, "set_time", None)
        if set_time is not None:
            set_time(self._last)
        self.physics.step(dt, self.setpoint_kw)
        self._last = now

    async def read_state(self) -> DeviceState:
        self._advance()
        p = self.physics
        down, up = flexibility(self.kind, p.power_kw, self.min_setpoint_kw,
                               self.max_setpoint_kw, p.soc_pct, self.params)
        return DeviceState(
            device_id=self.device_id, ts=self._last, power_kw=p.power_kw,
            energy_kwh=p.energy_kwh, soc_pct=p.soc_pct, indoor_temp_c=p.indoor_temp_c,
            available=True, flex_down_kw=down, flex_up_kw=up,
            site_import_kw=getattr(p, "site_import_kw", None),
            detail={"active_setpoint_kw": self.setpoint_kw,
                    "override": bool(getattr(p, "override", False))},
        )

    async def apply_setpoint(self, setpoint_kw: float) -> SetpointResult:
        try:
            value, clamped = clamp_setpoint(float(setpoint_kw), self.min_setpoint_kw,
                                            self.max_setpoint_kw)
        except ValueError as exc:
            return SetpointResult(self.device_id, setpoint_kw, 0.0, False, None, False, str(exc))
        self._advance()
        self.setpoint_kw = value
        self._set_at = self._last
        self.physics.step(0.0, value)
        return SetpointResult(self.device_id, setpoint_kw, value, clamped, value, True, None)

    async def release(self) -> None:
        self._advance()
        self.setpoint_kw = None
        self._set_at = None
        self.physics.step(0.0, None)

    async def heartbeat(self) -> None:
        if self._set_at is not None and (self.clock.now() - self._set_at).total_seconds() > self.lease_s:
            await self.release()
