"""``GET /api/v1/console/forecast``: the daemon's latest load forecast (P10-P90 band and median
over the next ``forecasting.horizon_hours``) against the metered load of the same sites over the
last :data:`HOURS_BACK` hours.

Both are in the forecast refresher's memory (:class:`vpp.daemon.forecasts.ForecastRefresher`:
``latest`` and the per-site interval means it trains on), so nothing is read from the database.
Sums are over the sites the forecast covers, so forecast and actuals compare like with like; an
interval where one of those sites has no metered mean has no actual (as in training).
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from vpp.api.context import PARTS
from vpp.api.routing import Call
from vpp.api.schemas_console import ForecastOut, ForecastPoint

#: hours of metered load shown before now, beside the forecast's horizon after it
HOURS_BACK = 24


def _sum_sites(frame: pd.DataFrame, sites: list[str]) -> pd.Series:
    """kW per interval over ``sites`` (NaN where one of them is missing)."""
    cols = {str(c): c for c in frame.columns}
    picked = frame[[cols[s] for s in sites if s in cols]]
    if picked.shape[1] < len(sites):
        return pd.Series(float("nan"), index=frame.index)
    return picked.sum(axis=1, min_count=len(sites))


def _value(series: pd.Series | None, ts: pd.Timestamp) -> float | None:
    if series is None or ts not in series.index:
        return None
    v = series.loc[ts]
    return None if pd.isna(v) else float(v)


async def console_forecast(call: Call) -> ForecastOut:
    parts = call.request.app[PARTS]
    ref = parts.forecasts
    st = ref.status
    fc = ref.latest
    if fc is None:
        return ForecastOut(state=st.state, message=st.message, origin=None, sites_forecast=0,
                           levels=[], points=[])
    levels = sorted(fc.quantiles)
    shown = [levels[0], min(levels, key=lambda x: abs(x - 0.5)), levels[-1]]
    sites = [str(c) for c in fc.values_kw[levels[0]].columns]
    low, mid, high = (fc.values_kw[x].sum(axis=1, min_count=1) for x in shown)
    actual = _sum_sites(ref.history.frame, sites) if ref.history.frame is not None else None
    since = pd.Timestamp(parts.clock() - timedelta(hours=HOURS_BACK))
    stamps = set(low.index)
    if actual is not None:
        stamps |= {t for t in actual.index if t >= since}
    points = [ForecastPoint(ts=t.to_pydatetime(), low_kw=_value(low, t), mid_kw=_value(mid, t),
                            high_kw=_value(high, t), actual_kw=_value(actual, t))
              for t in sorted(stamps)]
    return ForecastOut(state=st.state, message=st.message, origin=fc.origin.to_pydatetime(),
                       sites_forecast=len(sites), levels=shown, points=points)
