"""The city fleet in process: one physics model per device behind the project's in-process
:class:`~sim.inprocess.InProcessAdapter`, on a manual (accelerated) clock.

:meth:`CityPlant.advance` moves the clock one market interval: it applies the scenario behaviour
for the interval (:mod:`sim.scenarios.behaviour`), lets every device integrate its physics
through the adapter protocol (``read_state``, the telemetry the aggregator sees) and returns the
revenue-meter reading of every device (average kW over the interval, from its energy counter);
:attr:`CityPlant.site_kw` is what the site meters read over it (a battery's host load plus its
average power; NaN for devices without a site meter).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from device_adapters.protocol import DeviceState
from sim.clock import ManualClock
from sim.inprocess import InProcessAdapter
from sim.scenarios import behaviour
from sim.scenarios.fleet import ScenarioDevice
from vpp.device_kinds import DeviceKind

BEHAVIOUR_KINDS = frozenset({DeviceKind.COMMERCIAL_BUILDING, DeviceKind.INDUSTRIAL_LOAD,
                             DeviceKind.BATTERY})


def device_id_of(dev: ScenarioDevice) -> int:
    """Device ids are the fleet index + 1 (stable for a scenario and seed)."""
    return dev.index + 1


class CityPlant:
    """All devices of a (sub)fleet, simulated in process from ``start``."""

    def __init__(self, devices: Sequence[ScenarioDevice], start: datetime, seed: int = 0) -> None:
        self.devices = list(devices)
        self.clock = ManualClock(start)
        self.adapters: list[InProcessAdapter] = []
        for d in self.devices:
            a = InProcessAdapter.create(
                device_id_of(d), d.kind, d.spec.rated_power_kw, d.spec.min_setpoint_kw,
                d.spec.max_setpoint_kw, d.spec.params, self.clock, seed=seed * 1_000_003 + d.index,
            )
            behaviour.configure(a.physics, d)
            self.adapters.append(a)
        self._kinds = [d.kind for d in self.devices]
        self._shaped = [i for i, k in enumerate(self._kinds) if k in BEHAVIOUR_KINDS]
        self._energy = self._counters()
        self.states: list[DeviceState | None] = [None] * len(self.devices)
        host = [getattr(a.physics, "host_load_kw", None) for a in self.adapters]
        self._host_kw = np.array([np.nan if h is None else float(h) for h in host])
        self.site_kw = np.full(len(self.devices), np.nan)

    def _counters(self) -> np.ndarray:
        return np.array([behaviour.meter_energy_kwh(a.physics, k)
                         for a, k in zip(self.adapters, self._kinds, strict=True)])

    def now(self) -> datetime:
        return self.clock.now()

    def shape(self, outdoor_temp_c: float) -> None:
        """Apply the behaviour of the interval that starts now."""
        hour = self.clock.now().hour
        for i in self._shaped:
            behaviour.update(self.adapters[i].physics, self.devices[i], hour, outdoor_temp_c)

    async def advance(self, minutes: int) -> np.ndarray:
        """Integrate ``minutes`` (every device reads its state at the new time); returns each
        device's average power over the step in kW (revenue meter)."""
        self.clock.advance(minutes * 60)
        states = self.states
        for i, a in enumerate(self.adapters):
            states[i] = await a.read_state()
        energy = self._counters()
        kw = (energy - self._energy) / (minutes / 60)
        self._energy = energy
        self.site_kw = self._host_kw + kw  # the host load is constant over the step
        return kw

    def end_time(self, minutes: int) -> datetime:
        return self.clock.now() + timedelta(minutes=minutes)
