"""A grid-tied PV inverter: its array's output under the sky, limited by the curtailment command.

Available output is the site's pvlib model (:func:`forecasting.pv.ac_output_kw`, the same model
the forecast uses) under the clear sky scaled by ``clear_sky_index`` (1.0: clear; a run with
cloud data sets it; the season's weather has temperatures only, so nothing sets it there yet:
ASSUMPTION, a clear sky). The model is evaluated once per UTC day on a one-minute grid and
interpolated (pvlib's clear sky costs ~25 ms a call; a simulated device is read every second).

The inverter follows its curtailment command: a setpoint ``s <= 0`` (minus the output ceiling,
:mod:`vpp.device_kinds`) caps output at ``-s``; no setpoint (released, or its revert timer fell
back: :class:`sim.device.SimulatedDevice` does that from the profile's watchdog) is unlimited,
output = available. ``power_kw`` is in the project's sign: ``-output`` (generation is export).
It responds within a step (real inverters ramp in seconds; the profile's ramp time is left 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from forecasting.pv import ac_output_kw
from vpp.device_kinds import PvInverterParams

_DAY_MINUTES = 24 * 60
#: sub-step (s) of the energy count over a long advance
_STEP_S = 300.0


@dataclass
class PvModel:
    """``power_kw`` <= 0 (generation), ``available_kw`` >= 0 what the sky allows now."""

    site: PvInverterParams
    rated_kw: float
    clear_sky_index: float = 1.0
    ts: datetime = field(default_factory=lambda: datetime(2025, 7, 15, 4, 0, tzinfo=UTC))
    ceiling_kw: float | None = None
    indoor_temp_c: float | None = None
    soc_pct: float | None = None
    #: energy drawn from the grid (kWh): none in this model (an inverter's night standby is
    #: left out); ``generated_kwh`` counts its output
    energy_kwh: float = 0.0
    generated_kwh: float = 0.0
    _curves: dict[object, np.ndarray] = field(default_factory=dict, repr=False)

    def _curve(self, day: datetime) -> np.ndarray:
        """Clear-sky AC output (kW) of ``day`` (UTC midnight), minute by minute, 1441 points."""
        key = day.date()
        if key not in self._curves:
            times = pd.date_range(day, periods=_DAY_MINUTES + 1, freq="1min")
            self._curves.clear()  # one day at a time
            self._curves[key] = ac_output_kw(self.site, self.rated_kw, times).to_numpy()
        return self._curves[key]

    @property
    def available_kw(self) -> float:
        """What the array and inverter would give now, uncurtailed (kW, >= 0)."""
        ts = self.ts.astimezone(UTC)
        day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
        minutes = (ts - day).total_seconds() / 60.0
        curve = self._curve(day)
        clear = float(np.interp(minutes, np.arange(curve.size), curve))
        return min(clear * self.clear_sky_index, self.rated_kw)

    @property
    def output_kw(self) -> float:
        """AC output now (kW, >= 0): available, capped at the curtailment ceiling."""
        out = self.available_kw
        return out if self.ceiling_kw is None else min(out, max(self.ceiling_kw, 0.0))

    @property
    def power_kw(self) -> float:
        return -self.output_kw + 0.0  # no "-0.0"

    @property
    def curtailed_kw(self) -> float:
        """Output the ceiling holds back now (kW, >= 0)."""
        return self.available_kw - self.output_kw

    def set_time(self, ts: datetime) -> None:
        if ts.tzinfo is None:
            raise ValueError("the PV model needs timezone-aware time")
        self.ts = ts

    def step(self, dt_s: float, setpoint_kw: float | None) -> None:
        """Advance ``dt_s`` seconds under ``setpoint_kw`` (None: unlimited), counting the energy
        generated in sub-steps of at most :data:`_STEP_S` (at each one's middle)."""
        self.ceiling_kw = None if setpoint_kw is None else max(-setpoint_kw, 0.0)
        left = max(dt_s, 0.0)
        while left > 1e-9:
            h = min(left, _STEP_S)
            self.ts = self.ts + timedelta(seconds=h / 2)
            self.generated_kwh += self.output_kw * h / 3600.0
            self.ts = self.ts + timedelta(seconds=h / 2)
            left -= h
        self.ceiling_kw = None if setpoint_kw is None else max(-setpoint_kw, 0.0)
