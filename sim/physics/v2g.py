"""Bidirectional (V2G) DC charger with one car: the car's battery is a
:class:`~sim.physics.battery.BatteryModel` (state of charge, efficiencies, stops at its limits),
connected from ``arrive_hour`` to ``depart_hour`` each day.

The charger follows a signed setpoint (``> 0`` charges the car, ``< 0`` discharges it, within
``max_charge_kw`` / ``max_discharge_kw``); with no setpoint it charges the car at full power
until the car is full (an uncontrolled charger, as the Wallbox Quasar 1 does under its app). It
knows nothing of the driver's ask: keeping it is the aggregator's job, and each departure is
recorded (``departures``: the car's state of charge when it left and what its driver asked) so
a run can show whether it was kept. With no car the charger draws nothing and reports a state
of charge of 0 (the Quasar's register reads 0 with no car, wallbox-quasar profile).

ASSUMPTION (no source found): a commuter's car, home from 18:00 to 07:30, arriving at 50%.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sim.physics.battery import BatteryModel

#: sub-step of a long advance (h): the car's arrival and departure land within it
_STEP_H = 0.25


@dataclass
class Departure:
    """The car leaving: its state of charge (%) and what its driver asked for (%)."""

    hour: float
    soc_pct: float
    asked_pct: float

    @property
    def short_pct(self) -> float:
        """How far below the ask the car left (%; 0 when it left with it)."""
        return max(self.asked_pct - self.soc_pct, 0.0)


@dataclass
class V2gChargerModel:
    """``power_kw`` > 0 charges the car, < 0 discharges it; ``soc_pct`` the car's (0: no car)."""

    max_charge_kw: float
    max_discharge_kw: float
    car: BatteryModel
    departure_soc_pct: float = 80.0
    arrive_hour: float = 18.0
    depart_hour: float = 7.5
    arrival_soc_pct: float = 50.0
    hour: float = 12.0
    power_kw: float = 0.0
    indoor_temp_c: float | None = None
    departures: list[Departure] = field(default_factory=list)
    plugged: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.car.default_kw = self.max_charge_kw
        self.car.max_charge_kw = self.max_charge_kw
        self.car.max_discharge_kw = self.max_discharge_kw
        self.plugged = self._home(self.hour)

    def _home(self, hour: float) -> bool:
        a, d = self.arrive_hour, self.depart_hour
        return (a <= hour or hour < d) if a > d else (a <= hour < d)

    @property
    def energy_kwh(self) -> float:
        """The energy the charger has drawn to charge cars (kWh, a counter)."""
        return self.car.charged_kwh

    @property
    def soc_pct(self) -> float:
        return self.car.soc_pct if self.plugged else 0.0

    def set_time(self, ts: datetime) -> None:
        self.hour = ts.hour + ts.minute / 60.0 + ts.second / 3600.0
        self._plug(self._home(self.hour))

    def _plug(self, home: bool) -> None:
        if home and not self.plugged:
            self.car.soc_pct = self.arrival_soc_pct
        elif self.plugged and not home:
            self.departures.append(Departure(self.hour, self.car.soc_pct,
                                             self.departure_soc_pct))
        self.plugged = home

    def step(self, dt_s: float, setpoint_kw: float | None) -> None:
        dt_h = max(dt_s, 0.0) / 3600.0
        while dt_h > 1e-12:
            h = min(dt_h, _STEP_H)
            if self.plugged:
                self.car.step(h * 3600.0, setpoint_kw)
            self.hour = (self.hour + h) % 24.0
            self._plug(self._home(self.hour))
            dt_h -= h
        if self.plugged:
            self.car.step(0.0, setpoint_kw)
            self.power_kw = self.car.power_kw
        else:
            self.power_kw = 0.0
