"""PV output from the sky: clear-sky irradiance to AC power for a site, and its quantiles.

One model of a PV site (:class:`~vpp.device_kinds.PvInverterParams`), on pvlib, used by the
forecast here and by the simulated inverter (:mod:`sim.physics.pv`) alike:

1. clear-sky irradiance at the site (``Location.get_clearsky``, Ineichen with pvlib's shipped
   Linke turbidity climatology) and the sun's position;
2. plane-of-array irradiance on the modules' tilt and azimuth
   (``irradiance.get_total_irradiance``, isotropic sky, pvlib's default albedo 0.25);
3. cell temperature (``temperature.sapm_cell``, open rack, glass/polymer modules; air at
   ``temp_air_c``, wind 1 m/s: ASSUMPTION where the caller gives no weather);
4. DC power (``pvsystem.pvwatts_dc``: the array's kWp and temperature coefficient), less the
   site's DC losses (``losses_pct``);
5. AC power (``inverter.pvwatts``: nominal efficiency, clipped at the inverter's AC rating).

Units: kW of AC output, ``>= 0`` (generation). In the project's sign convention a PV site's
load is *minus* these figures (:mod:`vpp.device_kinds`).

Quantiles (:func:`output_quantiles_kw`). ASSUMPTION (no source found for Hunan's day-ahead
cloud cover): the *clear-sky index* ``k`` (actual over clear-sky irradiance) of an interval
whose weather is not known is Beta-distributed, by default ``Beta(2.0, 1.5)`` (mean 0.57:
Hunan is cloudy, some 1,400-1,700 sunshine hours a year against ~4,400 of daylight), the same
``k`` for beam and diffuse. Output is monotone in ``k``, so the output's quantile ``q`` is the
output at ``k``'s quantile ``q``: quantiles are ordered by construction and zero at night.
A caller with a cloud forecast passes its own distribution (``index_a`` / ``index_b``) or a
known ``clear_sky_index`` to :func:`ac_output_kw`.

Nowcast (:func:`nowcast_load_kw`): from one reading, the clear-sky index it shows held over the
next hours (persistence of cloudiness, the usual short-term PV nowcast), times the clear-sky
output of each interval: the plan's baseline of an inverter without history follows the sun
instead of holding its last reading flat. A reading in the dark shows no index: the Beta
median is taken.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pvlib
from scipy import stats

from vpp.device_kinds import PvInverterParams
from vpp.errors import ValidationError

#: ASSUMPTION (module docstring): the clear-sky index's Beta shape where no cloud forecast is
#: given.
INDEX_A = 2.0
INDEX_B = 1.5
#: ASSUMPTION: air temperature (degC) and wind speed (m/s) where the caller gives no weather.
DEFAULT_TEMP_AIR_C = 25.0
WIND_SPEED_M_S = 1.0
_SAPM = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_polymer"]


def _check_times(times: pd.DatetimeIndex) -> None:
    if not isinstance(times, pd.DatetimeIndex) or times.tz is None:
        raise ValidationError("PV output needs timezone-aware timestamps (a DatetimeIndex "
                              "with a tz)")


def ac_output_kw(site: PvInverterParams, rated_power_kw: float, times: pd.DatetimeIndex,
                 clear_sky_index: float | np.ndarray = 1.0,
                 temp_air_c: float | pd.Series = DEFAULT_TEMP_AIR_C) -> pd.Series:
    """AC output (kW, ``>= 0``, at most ``rated_power_kw``) of ``site`` at ``times`` under the
    clear sky scaled by ``clear_sky_index`` (1: clear; a scalar or one per time, in [0, 1.2]:
    cloud-edge enhancement may pass the clear sky briefly)."""
    _check_times(times)
    if rated_power_kw <= 0:
        raise ValidationError(f"rated_power_kw must be > 0, got {rated_power_kw}")
    k = np.broadcast_to(np.asarray(clear_sky_index, dtype=float), (len(times),))
    if not (np.isfinite(k).all() and (k >= 0).all() and (k <= 1.2).all()):
        raise ValidationError("clear_sky_index must be finite and within [0, 1.2]")
    loc = pvlib.location.Location(site.latitude_deg, site.longitude_deg,
                                  altitude=site.altitude_m)
    sky = loc.get_clearsky(times, model="ineichen")
    sun = loc.get_solarposition(times)
    poa = pvlib.irradiance.get_total_irradiance(
        site.tilt_deg, site.azimuth_deg, sun["apparent_zenith"], sun["azimuth"],
        sky["dni"] * k, sky["ghi"] * k, sky["dhi"] * k)
    poa_w_m2 = poa["poa_global"].fillna(0.0).clip(lower=0.0)
    cell_c = pvlib.temperature.sapm_cell(poa_w_m2, temp_air_c, WIND_SPEED_M_S, **_SAPM)
    dc_w = pvlib.pvsystem.pvwatts_dc(poa_w_m2, cell_c, site.dc_capacity_kwp * 1000.0,
                                     site.gamma_pdc_per_c) * (1.0 - site.losses_pct / 100.0)
    ac_w = pvlib.inverter.pvwatts(dc_w, rated_power_kw * 1000.0 / site.inverter_efficiency,
                                  eta_inv_nom=site.inverter_efficiency)
    out = np.clip(np.nan_to_num(np.asarray(ac_w, dtype=float)) / 1000.0, 0.0, rated_power_kw)
    return pd.Series(out, index=times, name="ac_output_kw")


def nowcast_load_kw(site: PvInverterParams, rated_power_kw: float, window: pd.DatetimeIndex,
                    measured_kw: float, measured_at: pd.Timestamp,
                    interval_minutes: int) -> np.ndarray:
    """Expected load (kW, ``<= 0``: minus the output, the project's sign) of ``site`` in each
    interval starting at ``window`` (aware), from ``measured_kw`` (its power, project sign)
    read at ``measured_at``: the reading's share of the clear-sky output then (clipped to
    [0, 1.2]) times the clear-sky output at each interval's middle, at most the rating; in
    the dark, the output under the Beta median's clear-sky index (module docstring)."""
    _check_times(window)
    mid = window + pd.Timedelta(minutes=interval_minutes / 2)
    clear_now = float(ac_output_kw(site, rated_power_kw, pd.DatetimeIndex([measured_at])).iloc[0])
    if clear_now <= 0.01 * rated_power_kw:
        k = float(stats.beta.ppf(0.5, INDEX_A, INDEX_B))
        return -ac_output_kw(site, rated_power_kw, mid, k).to_numpy()
    share = float(np.clip(max(-measured_kw, 0.0) / clear_now, 0.0, 1.2))
    clear = ac_output_kw(site, rated_power_kw, mid).to_numpy()
    return -np.minimum(share * clear, rated_power_kw)


def output_quantiles_kw(site: PvInverterParams, rated_power_kw: float,
                        times: pd.DatetimeIndex, quantiles: Sequence[float] = (0.1, 0.5, 0.9),
                        index_a: float = INDEX_A, index_b: float = INDEX_B,
                        temp_air_c: float | pd.Series = DEFAULT_TEMP_AIR_C) -> pd.DataFrame:
    """Quantiles of ``site``'s AC output (kW, ``>= 0``) at ``times``: one column per quantile
    level, named ``p10`` / ``p50`` / ``p90`` (the project's quantile names; ``p10`` the low
    output, i.e. the high net load), plus ``clear_sky`` (the output under a clear sky). The
    clear-sky index is ``Beta(index_a, index_b)`` (module docstring)."""
    qs = [float(q) for q in quantiles]
    if not qs or not all(0.0 < q < 1.0 for q in qs):
        raise ValidationError("quantiles must be within (0, 1)")
    if index_a <= 0 or index_b <= 0:
        raise ValidationError("index_a and index_b must be > 0")
    out = pd.DataFrame(index=times)
    for q in sorted(qs):
        k = float(stats.beta.ppf(q, index_a, index_b))
        out[f"p{round(q * 100)}"] = ac_output_kw(site, rated_power_kw, times, k, temp_air_c)
    out["clear_sky"] = ac_output_kw(site, rated_power_kw, times, 1.0, temp_air_c)
    return out
