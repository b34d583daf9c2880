"""User-side battery: state of charge, charge/discharge efficiency, power and SoC limits, and
the site it sits behind: its host load and the site meter a hybrid inverter reads."""

from __future__ import annotations

from dataclasses import dataclass

#: The host site's load behind a simulated battery, as a share of the battery's rated power,
#: when nothing sets it (:func:`sim.physics.factory.make_physics`). ASSUMPTION (no source
#: found): a home battery of 5 kW sits behind an evening household load of about 2.5 kW (air
#: conditioning, cooking, lighting in the peak hours), half its rating; user-side storage is
#: not sized to export, so its site draws a comparable load. The season's C&I batteries set
#: their own share (the scenario's ``host_load_share``).
HOST_LOAD_SHARE = 0.5


@dataclass
class BatteryModel:
    """``power_kw`` > 0 charges (consumption), < 0 discharges. SoC in % of ``capacity_kwh``.

    ``host_load_kw``: the rest of the site's load behind the same grid connection (kW, held
    constant; None: the battery is modelled without a site, no site meter). The site meter
    reads ``site_import_kw`` = host load + battery power (+ import, - export).

    The setpoint is a signed power target; the battery clamps it to its power limits and stops
    at ``soc_min_pct``/``soc_max_pct``. Default behaviour (no setpoint): ``default_kw``.
    """

    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    soc_pct: float = 50.0
    soc_min_pct: float = 10.0
    soc_max_pct: float = 95.0
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    default_kw: float = 0.0
    power_kw: float = 0.0
    charged_kwh: float = 0.0
    discharged_kwh: float = 0.0
    indoor_temp_c: float | None = None
    host_load_kw: float | None = None

    @property
    def site_import_kw(self) -> float | None:
        """kW at the site's grid connection (+ import, - export); None without a site."""
        return None if self.host_load_kw is None else self.host_load_kw + self.power_kw

    @property
    def energy_kwh(self) -> float:
        return self.charged_kwh

    def _feasible(self, target_kw: float, dt_h: float) -> float:
        p = min(max(target_kw, -self.max_discharge_kw), self.max_charge_kw)
        if p > 0:
            if self.soc_pct >= self.soc_max_pct:
                return 0.0
            if dt_h > 0:
                room = (self.soc_max_pct - self.soc_pct) / 100.0 * self.capacity_kwh
                p = min(p, room / (self.charge_efficiency * dt_h))
        elif p < 0:
            if self.soc_pct <= self.soc_min_pct:
                return 0.0
            if dt_h > 0:
                avail = (self.soc_pct - self.soc_min_pct) / 100.0 * self.capacity_kwh
                p = max(p, -avail * self.discharge_efficiency / dt_h)
        return p

    def step(self, dt_s: float, setpoint_kw: float | None) -> None:
        target = self.default_kw if setpoint_kw is None else setpoint_kw
        dt_h = max(dt_s, 0.0) / 3600.0
        p = self._feasible(target, dt_h)
        if dt_h > 0:
            if p > 0:
                self.soc_pct += p * self.charge_efficiency * dt_h / self.capacity_kwh * 100.0
                self.charged_kwh += p * dt_h
            elif p < 0:
                self.soc_pct += p / self.discharge_efficiency * dt_h / self.capacity_kwh * 100.0
                self.discharged_kwh += -p * dt_h
            self.soc_pct = min(max(self.soc_pct, 0.0), 100.0)
            p = self._feasible(target, 0.0)
        self.power_kw = p
