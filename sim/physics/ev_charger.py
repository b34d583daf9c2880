"""EV charging station: sessions arrive and leave by time of day with energy needs.

Each connector holds at most one car. Arrivals follow a Poisson process whose hourly rate
(``arrivals_per_hour``, 24 values per connector) follows a depot day; each car needs
``need_kwh_range`` kWh and stays ``stay_h_range`` hours. The setpoint caps the station's total
power (shared equally among charging cars); ``None`` = charge at full rate.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime

#: Arrivals per connector per hour (bus depot: evening return, midday top-up).
DEPOT_ARRIVALS = [0.05] * 6 + [0.1, 0.2, 0.1, 0.05, 0.1, 0.2, 0.2, 0.1, 0.05, 0.05, 0.1,
                               0.3, 0.4, 0.3, 0.2, 0.1, 0.05, 0.05]


@dataclass
class Session:
    need_kwh: float
    departs_h: float  # hours from now


@dataclass
class EvChargerModel:
    connectors: int
    max_charge_kw_per_connector: float
    seed: int = 0
    start_with_cars: bool = True
    arrivals_per_hour: list[float] = field(default_factory=lambda: list(DEPOT_ARRIVALS))
    need_kwh_range: tuple[float, float] = (20.0, 60.0)
    stay_h_range: tuple[float, float] = (2.0, 8.0)
    power_kw: float = 0.0
    energy_kwh: float = 0.0
    soc_pct: float | None = None
    indoor_temp_c: float | None = None
    hour: float = 12.0
    sessions: list[Session | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        if not self.sessions:
            self.sessions = [self._new_session() if self.start_with_cars else None
                             for _ in range(self.connectors)]

    def _new_session(self) -> Session:
        return Session(self._rng.uniform(*self.need_kwh_range),
                       self._rng.uniform(*self.stay_h_range))

    def set_time(self, ts: datetime) -> None:
        self.hour = ts.hour + ts.minute / 60.0

    def _powers(self, setpoint_kw: float | None) -> list[float]:
        charging = [i for i, s in enumerate(self.sessions) if s is not None and s.need_kwh > 0]
        out = [0.0] * self.connectors
        if not charging:
            return out
        cap = self.max_charge_kw_per_connector * len(charging)
        if setpoint_kw is not None:
            cap = max(0.0, min(cap, setpoint_kw))
        share = cap / len(charging)
        for i in charging:
            out[i] = min(share, self.max_charge_kw_per_connector)
        return out

    def step(self, dt_s: float, setpoint_kw: float | None) -> None:
        dt_h = max(dt_s, 0.0) / 3600.0
        while dt_h > 1e-12:
            h = min(dt_h, 0.25)
            powers = self._powers(setpoint_kw)
            for i, s in enumerate(self.sessions):
                if s is None:
                    rate = self.arrivals_per_hour[int(self.hour) % 24]
                    if self._rng.random() < 1.0 - math.exp(-rate * h):
                        self.sessions[i] = self._new_session()
                    continue
                delivered = min(powers[i] * h, s.need_kwh)
                s.need_kwh -= delivered
                self.energy_kwh += delivered
                s.departs_h -= h
                if s.departs_h <= 0:
                    self.sessions[i] = None
            self.hour = (self.hour + h) % 24.0
            dt_h -= h
        self.power_kw = sum(self._powers(setpoint_kw))

    @property
    def cars_present(self) -> int:
        return sum(1 for s in self.sessions if s is not None)
