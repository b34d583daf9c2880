"""Industrial process with production batches that can be curtailed for a limited time.

The process runs at ``run_kw`` (``load_factor`` of its rating). A setpoint caps its power; the
curtailed energy (``makeup_fraction`` of it) becomes a backlog that the process makes up at full
rating once the cap is lifted. A cap held longer than ``max_curtail_minutes`` is overridden by
the plant (``override`` set, full running power) until the aggregator releases it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class IndustrialModel:
    rated_kw: float
    load_factor: float = 0.8
    max_curtail_minutes: float = 60.0
    makeup_fraction: float = 1.0
    power_kw: float = 0.0
    energy_kwh: float = 0.0
    backlog_kwh: float = 0.0
    curtailed_s: float = 0.0
    override: bool = False
    soc_pct: float | None = None
    indoor_temp_c: float | None = None

    @property
    def run_kw(self) -> float:
        return self.rated_kw * self.load_factor

    @property
    def curtail_remaining_s(self) -> float:
        return max(0.0, self.max_curtail_minutes * 60.0 - self.curtailed_s)

    def _power(self, setpoint_kw: float | None) -> float:
        if setpoint_kw is None:
            self.override = False
            self.curtailed_s = 0.0
        if setpoint_kw is None or self.override:
            return self.rated_kw if self.backlog_kwh > 0 else self.run_kw
        if setpoint_kw < self.run_kw:
            return max(setpoint_kw, 0.0)
        if self.backlog_kwh > 0:
            return min(self.rated_kw, setpoint_kw)
        return self.run_kw

    def step(self, dt_s: float, setpoint_kw: float | None) -> None:
        remaining = max(dt_s, 0.0)
        while remaining > 1e-9:
            h_s = min(remaining, 60.0)
            p = self._power(setpoint_kw)
            h = h_s / 3600.0
            if p < self.run_kw:
                self.backlog_kwh += (self.run_kw - p) * h * self.makeup_fraction
                self.curtailed_s += h_s
                if self.curtailed_s >= self.max_curtail_minutes * 60.0:
                    self.override = True
            elif p > self.run_kw:
                self.backlog_kwh = max(0.0, self.backlog_kwh - (p - self.run_kw) * h)
            self.energy_kwh += p * h
            remaining -= h_s
        self.power_kw = self._power(setpoint_kw)
