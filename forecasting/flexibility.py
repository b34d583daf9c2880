"""Flexibility forecasts per device kind, with uncertainty, as pure functions.

Each function takes the device's parameter model from :mod:`vpp.device_kinds` plus forecasts or
history (pandas, aware 15-minute index) and returns a DataFrame with one row per interval and
quantile columns named ``<quantity>_p10`` / ``_p50`` / ``_p90``. Sign convention as everywhere:
``flex_down_kw`` is how much consumption can be *reduced* (>= 0), ``flex_up_kw`` how much it can
be *increased* (>= 0). Lower quantiles are the conservative side: what can be offered with 90%
confidence is the ``_p10`` column.

- EV chargers: connected vehicles and energy still needed, from the empirical quantiles of the
  same interval of the day on recent days of the same type (working / non-working).
- Batteries: state of charge along a planned power path, with a band that widens with the
  square root of time (measurement error plus drift), and the extra discharge/charge power that
  the band allows for ``sustain_hours``.
- Commercial buildings: how far the HVAC load can be shed for ``shed_hours`` before the indoor
  temperature leaves the comfort band, and how long a given shed keeps it inside
  (:func:`comfort_shed_kw`, :func:`comfort_shed_minutes`: the first-order RC model below),
  limited by ``max_shed_kw`` and by the HVAC load forecast itself. The scheduler's view of a
  building (:mod:`vpp.scheduler.device_view`) limits its shed time by the same estimate.

Building thermal model (first order, as :mod:`sim.physics.building`):
``C dT/dt = (T_out - T) / R + Q_internal - COP * P`` (``C`` kWh/degC, ``R`` degC/kW thermal,
``P`` kW electric; :meth:`~vpp.device_kinds.CommercialBuildingParams.thermal`: as declared, else
sized from the building's rated power, :func:`~vpp.device_kinds.design_thermal_params`). Before the shed
the HVAC draws ``P0``, holding ``T0``; shedding ``s`` kW leaves ``C d(dT)/dt = COP s - dT / R``,
so ``dT(t) = COP s R (1 - exp(-t / RC))``. The outdoor temperature drops out of the rise: it
sets ``P0`` (the baseline the shed is taken from, which caps the shed), not how fast a given
shed warms (or, heating, cools) the building.
- Industrial loads: curtailable power = min(``max_curtail_kw``, forecast running power).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from forecasting.calendars import DayCalendar, day_flags
from vpp.device_kinds import (
    DESIGN_COP,
    BatteryParams,
    BuildingThermal,
    CommercialBuildingParams,
    EvChargerParams,
    IndustrialLoadParams,
)
from vpp.errors import ValidationError

QUANTILES = (0.1, 0.5, 0.9)
Z90 = 1.2815515655446004  # standard normal quantile at 0.9

#: ASSUMPTION: the electric HVAC's coefficient of performance (kW of heat moved per kW drawn), a
#: typical VRF / chiller figure (:data:`vpp.device_kinds.DESIGN_COP`, the COP a building's
#: design R is sized at); :class:`~vpp.device_kinds.CommercialBuildingParams` declares none. The
#: simulated building's default (:mod:`sim.physics.building`) is the same 3. A heat pump
#: heating at a lower COP drifts slower than this estimate (conservative).
ASSUMED_HVAC_COP = DESIGN_COP


def comfort_headroom_c(params: CommercialBuildingParams) -> float:
    """Degrees C the indoor temperature may drift in a shed before it leaves the comfort band:
    half the band. ASSUMPTION: the building's controller holds the middle of its band (as the
    simulated building is set, and as :mod:`bidding.fallback` takes a building with no
    indoor reading); the same either way, cooling (a shed warms) or heating (a shed cools)."""
    return (params.comfort_max_c - params.comfort_min_c) / 2


def comfort_shed_minutes(thermal: BuildingThermal, shed_kw: float, headroom_c: float,
                         cop: float = ASSUMED_HVAC_COP) -> float:
    """Minutes a shed of ``shed_kw`` (electric, held) keeps the indoor temperature of a
    building of ``thermal`` R and C within ``headroom_c`` of where it started (module
    docstring: ``dT(t) = COP s R (1 - e^(-t/RC))``); ``inf`` when the steady rise ``COP s R``
    stays within it, 0 without headroom."""
    if headroom_c <= 0:
        return 0.0
    r, c = thermal.resistance_c_per_kw, thermal.capacitance_kwh_per_c
    steady_c = cop * max(shed_kw, 0.0) * r
    if steady_c <= headroom_c:
        return float("inf")
    return float(-r * c * np.log1p(-headroom_c / steady_c) * 60.0)


def comfort_shed_kw(thermal: BuildingThermal, hours: float, headroom_c: float,
                    cop: float = ASSUMED_HVAC_COP) -> float:
    """The largest shed (kW electric) held for ``hours`` that keeps the indoor temperature of a
    building of ``thermal`` R and C within ``headroom_c``:
    ``headroom / (COP R (1 - e^(-hours/RC)))`` (module docstring)."""
    if hours <= 0:
        raise ValidationError("hours must be > 0")
    r, c = thermal.resistance_c_per_kw, thermal.capacitance_kwh_per_c
    return max(headroom_c, 0.0) / (cop * r * -np.expm1(-hours / (r * c)))


def _qname(q: float) -> str:
    return f"p{round(q * 100)}"


def _quantile_columns(frame: pd.DataFrame, base: str, quantiles: Sequence[float]) -> list[pd.Series]:
    cols = [f"{base}_{_qname(q)}" for q in quantiles]
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValidationError(f"forecast lacks column(s) {', '.join(missing)}")
    return [frame[c].astype(float) for c in cols]


def ev_flexibility(
    params: EvChargerParams,
    history: pd.DataFrame,
    target_index: pd.DatetimeIndex,
    calendar: DayCalendar,
    *,
    quantiles: Sequence[float] = QUANTILES,
    lookback_days: int = 28,
    interval_minutes: int,
) -> pd.DataFrame:
    """Connected EVs, energy still needed (kWh) and charging flexibility per target interval.

    ``history`` has columns ``connected`` (vehicles plugged in) and ``energy_needed_kwh``
    (energy the plugged-in vehicles still want) on an aware index. For each target interval the
    quantiles come from the same interval of the day on the last ``lookback_days`` days of the
    same day type. ``flex_down_kw`` is the charging power that could be paused (all connected
    vehicles at full power, or what they still need in one interval, whichever is less);
    ``flex_up_kw`` is the same power (they can charge at full power instead of waiting).
    """
    for c in ("connected", "energy_needed_kwh"):
        if c not in history.columns:
            raise ValidationError(f"EV history lacks column {c!r}")
    if len(history) == 0:
        raise ValidationError("EV history is empty")
    end = history.index[-1]
    hist = history[history.index > end - pd.Timedelta(days=lookback_days)]
    slot = (hist.index.hour * 60 + hist.index.minute) // interval_minutes
    key = pd.DataFrame({"workday": day_flags(hist.index, calendar)["workday"].to_numpy(),
                        "slot": slot}, index=hist.index)
    grouped = hist[["connected", "energy_needed_kwh"]].groupby(
        [key["workday"], key["slot"]])
    table = grouped.quantile(list(quantiles))  # index (workday, slot, q)
    t_slot = (target_index.hour * 60 + target_index.minute) // interval_minutes
    t_work = day_flags(target_index, calendar)["workday"].to_numpy()
    out = pd.DataFrame(index=target_index)
    hours = interval_minutes / 60
    for q in quantiles:
        keys = pd.MultiIndex.from_arrays([t_work, t_slot, np.full(len(target_index), q)])
        vals = table.reindex(keys)
        if vals.isna().any().any():
            raise ValidationError("EV history has no data for some interval of the day and day type")
        connected = np.clip(vals["connected"].to_numpy(), 0, params.connectors)
        energy = np.clip(vals["energy_needed_kwh"].to_numpy(), 0, None)
        power = np.minimum(connected * params.max_charge_kw_per_connector, energy / hours)
        n = _qname(q)
        out[f"connected_{n}"] = connected
        out[f"energy_needed_kwh_{n}"] = energy
        out[f"flex_down_kw_{n}"] = power
        out[f"flex_up_kw_{n}"] = power
        if params.v2g:
            out[f"discharge_kw_{n}"] = connected * params.max_discharge_kw_per_connector
    return out


def battery_flexibility(
    params: BatteryParams,
    soc_now_pct: float,
    planned_power_kw: pd.Series,
    *,
    max_charge_kw: float,
    max_discharge_kw: float,
    soc_error_pct: float = 2.0,
    drift_pct_per_sqrt_hour: float = 1.0,
    sustain_hours: float = 1.0,
    interval_minutes: int,
) -> pd.DataFrame:
    """State of charge (%) along ``planned_power_kw`` (+ charge, - discharge) with P10/P50/P90,
    and the extra flexibility around the plan that each SoC quantile allows.

    The SoC spread is ``soc_error_pct`` (standard deviation now) growing as
    ``drift_pct_per_sqrt_hour * sqrt(hours)``; P10/P90 are +/-1.28 standard deviations.
    ``flex_down_kw`` = plan + the discharge power sustainable for ``sustain_hours`` from the
    energy above ``soc_min_pct``; ``flex_up_kw`` = the charge power sustainable into the room
    below ``soc_max_pct`` minus the plan; both within the power limits and >= 0.
    """
    if not 0 <= soc_now_pct <= 100:
        raise ValidationError(f"soc_now_pct must be within 0-100, got {soc_now_pct}")
    if max_charge_kw < 0 or max_discharge_kw < 0:
        raise ValidationError("max_charge_kw and max_discharge_kw must be >= 0")
    p = planned_power_kw.to_numpy(dtype=float)
    if not np.isfinite(p).all():
        raise ValidationError("planned power has missing values")
    hours = interval_minutes / 60
    p = np.clip(p, -max_discharge_kw, max_charge_kw)
    energy_pct = np.where(p > 0, p * params.charge_efficiency, p / params.discharge_efficiency)
    energy_pct = energy_pct * hours / params.capacity_kwh * 100
    soc = np.clip(soc_now_pct + np.cumsum(energy_pct), params.soc_min_pct, params.soc_max_pct)
    elapsed = np.arange(1, len(p) + 1) * hours
    sd = np.sqrt(soc_error_pct**2 + drift_pct_per_sqrt_hour**2 * elapsed)
    out = pd.DataFrame(index=planned_power_kw.index)
    for q, z in ((0.1, -Z90), (0.5, 0.0), (0.9, Z90)):
        s = np.clip(soc + z * sd, 0, 100)
        avail = np.clip(s - params.soc_min_pct, 0, None) / 100 * params.capacity_kwh
        room = np.clip(params.soc_max_pct - s, 0, None) / 100 * params.capacity_kwh
        dis = np.minimum(max_discharge_kw, avail * params.discharge_efficiency / sustain_hours)
        chg = np.minimum(max_charge_kw, room / params.charge_efficiency / sustain_hours)
        n = _qname(q)
        out[f"soc_pct_{n}"] = s
        out[f"flex_down_kw_{n}"] = np.clip(p + dis, 0, None)
        out[f"flex_up_kw_{n}"] = np.clip(chg - p, 0, None)
    # the P10 of flexibility comes from the low-SoC side for discharge, high-SoC for charge
    up = out[["flex_up_kw_p10", "flex_up_kw_p90"]].to_numpy()
    out["flex_up_kw_p10"], out["flex_up_kw_p90"] = up[:, 1], up[:, 0]
    return out


def building_flexibility(
    params: CommercialBuildingParams,
    indoor_temp_c: float,
    hvac_load_kw: pd.DataFrame,
    *,
    rated_power_kw: float,
    indoor_temp_sd_c: float = 0.5,
    shed_hours: float = 1.0,
    mode: Literal["cooling", "heating"] = "cooling",
    quantiles: Sequence[float] = QUANTILES,
) -> pd.DataFrame:
    """Comfort headroom (deg C) and sheddable HVAC power for ``shed_hours`` (kW,
    :func:`comfort_shed_kw` of the headroom, R and C as declared or sized from
    ``rated_power_kw``).

    ``hvac_load_kw`` holds the HVAC load forecast as ``load_kw_p10``/``_p50``/``_p90``. In
    ``cooling`` mode the headroom is ``comfort_max_c - indoor``; in ``heating`` mode
    ``indoor - comfort_min_c``. The indoor temperature is assumed held by the HVAC until the
    shed starts; its uncertainty is ``indoor_temp_sd_c``.
    """
    if shed_hours <= 0:
        raise ValidationError("shed_hours must be > 0")
    if shed_hours * 60 > params.max_shed_minutes:
        raise ValidationError(
            f"shed of {shed_hours:g} h exceeds max_shed_minutes={params.max_shed_minutes}"
        )
    loads = _quantile_columns(hvac_load_kw, "load_kw", quantiles)
    headroom = (params.comfort_max_c - indoor_temp_c if mode == "cooling"
                else indoor_temp_c - params.comfort_min_c)
    thermal = params.thermal(rated_power_kw)
    out = pd.DataFrame(index=hvac_load_kw.index)
    for q, load in zip(quantiles, loads, strict=True):
        z = float(np.sqrt(2) * _erfinv(2 * q - 1))
        room = max(headroom + z * indoor_temp_sd_c, 0.0)
        thermal_kw = comfort_shed_kw(thermal, shed_hours, room)
        shed = np.clip(np.minimum(np.minimum(params.max_shed_kw, thermal_kw), load), 0, None)
        n = _qname(q)
        out[f"headroom_c_{n}"] = room
        out[f"flex_down_kw_{n}"] = shed
        out[f"rebound_kwh_{n}"] = shed * shed_hours * params.rebound_fraction
    return out


def industrial_flexibility(
    params: IndustrialLoadParams,
    load_forecast_kw: pd.DataFrame,
    *,
    quantiles: Sequence[float] = QUANTILES,
) -> pd.DataFrame:
    """Curtailable power per interval: min(``max_curtail_kw``, forecast running power) per
    quantile of ``load_kw_p10``/``_p50``/``_p90``, with the make-up energy one hour of that
    curtailment would need (``makeup_fraction``) within ``makeup_hours``."""
    loads = _quantile_columns(load_forecast_kw, "load_kw", quantiles)
    out = pd.DataFrame(index=load_forecast_kw.index)
    for q, load in zip(quantiles, loads, strict=True):
        curtail = np.clip(np.minimum(params.max_curtail_kw, load.to_numpy()), 0, None)
        n = _qname(q)
        out[f"flex_down_kw_{n}"] = curtail
        out[f"makeup_kwh_per_hour_{n}"] = curtail * params.makeup_fraction
    out["max_duration_minutes"] = params.max_curtail_minutes
    return out


def _erfinv(y: float) -> float:
    from scipy.special import erfinv

    return float(erfinv(y))
