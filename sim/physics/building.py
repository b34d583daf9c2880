"""Commercial building HVAC: a first-order thermal RC model with a comfort band.

``C dT/dt = (T_out - T) / R + Q_internal - COP * P`` with ``R`` in degC/kW(thermal), ``C`` in
kWh/degC, ``P`` the electric HVAC power in kW. The building's own controller draws the power
that drives ``T`` back to ``set_temp_c`` within ``tau_h`` hours; a setpoint caps that power,
unless the indoor temperature is above ``comfort_max_c``, where the building overrides the cap
(comfort protection). Outdoor temperature: a Zhuzhou summer day (``mean + amp * sin``).

``mode``: ``"cool"`` (default, as above); ``"heat"``: a heat pump adds ``heating_cop * P`` of
heat (``C dT/dt = (T_out - T) / R + Q_internal + heating_cop * P``), drawing the power that
brings ``T`` up to ``set_temp_c``; a cap is overridden below ``comfort_min_c``; ``"off"``: no
electric HVAC (a building heated by other means, or not conditioned), ``P = 0``.

``R`` and ``C`` not given: sized from ``rated_kw`` by the product's rule
(:func:`vpp.device_kinds.design_thermal_params`, the planner's assumption for a building
enrolled without them), so the simulated building and the planner agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vpp.device_kinds import design_thermal_params


@dataclass
class BuildingModel:
    rated_kw: float
    comfort_min_c: float = 22.0
    comfort_max_c: float = 27.0
    thermal_resistance_c_per_kw: float = 0.0  # 0: sized from rated_kw (module docstring)
    thermal_capacitance_kwh_per_c: float = 0.0  # 0: sized from rated_kw
    cop: float = 3.0
    internal_gain_fraction: float = 0.4
    set_temp_c: float = 25.0
    indoor_temp_c: float = 25.0
    outdoor_mean_c: float = 32.0
    outdoor_amp_c: float = 5.0
    tau_h: float = 0.25
    hour: float = 14.0
    power_kw: float = 0.0
    energy_kwh: float = 0.0
    soc_pct: float | None = None
    override: bool = False
    mode: str = "cool"  # "cool" | "heat" | "off"
    heating_cop: float = 2.5

    def __post_init__(self) -> None:
        design = design_thermal_params(self.rated_kw)
        if self.thermal_resistance_c_per_kw <= 0:
            self.thermal_resistance_c_per_kw = design.resistance_c_per_kw
        if self.thermal_capacitance_kwh_per_c <= 0:
            self.thermal_capacitance_kwh_per_c = design.capacitance_kwh_per_c

    @property
    def outdoor_temp_c(self) -> float:
        return self.outdoor_mean_c + self.outdoor_amp_c * math.sin((self.hour - 9.0) / 24 * 2 * math.pi)

    @property
    def gains_kw_th(self) -> float:
        internal = self.internal_gain_fraction * self.rated_kw * self.cop
        return (self.outdoor_temp_c - self.indoor_temp_c) / self.thermal_resistance_c_per_kw + internal

    @property
    def hvac_kw_th(self) -> float:
        """Heat the HVAC removes per kW electric (cooling, > 0) or adds (heating, < 0)."""
        if self.mode == "cool":
            return self.cop
        return -self.heating_cop if self.mode == "heat" else 0.0

    def _power(self, setpoint_kw: float | None, gains_kw_th: float | None = None) -> float:
        self.override = False
        if self.mode == "off":
            return 0.0
        if gains_kw_th is None:
            gains_kw_th = self.gains_kw_th
        need_th = gains_kw_th + self.thermal_capacitance_kwh_per_c * (
            self.indoor_temp_c - self.set_temp_c) / self.tau_h
        if self.mode == "heat":
            need = min(max(-need_th / self.heating_cop, 0.0), self.rated_kw)
            outside = self.indoor_temp_c < self.comfort_min_c
        else:
            need = min(max(need_th / self.cop, 0.0), self.rated_kw)
            outside = self.indoor_temp_c > self.comfort_max_c
        if setpoint_kw is not None and need > setpoint_kw:
            if outside:
                self.override = True
                return need
            return max(setpoint_kw, 0.0)
        return need

    def step(self, dt_s: float, setpoint_kw: float | None) -> None:
        remaining_h = max(dt_s, 0.0) / 3600.0
        while remaining_h > 1e-12:
            h = min(remaining_h, 60.0 / 3600.0)
            gains = self.gains_kw_th  # once per sub-step (the state does not change in between)
            p = self._power(setpoint_kw, gains)
            self.indoor_temp_c += (gains - self.hvac_kw_th * p) * h / self.thermal_capacitance_kwh_per_c
            self.energy_kwh += p * h
            self.hour = (self.hour + h) % 24.0
            remaining_h -= h
        self.power_kw = self._power(setpoint_kw)
