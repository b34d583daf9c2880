"""Reading and validating load CSV files.

Input: a timestamp column plus one or more load columns in kW (average power over the interval
that starts at the timestamp), optionally an outdoor temperature column (deg C) and a 0/1
working-day column. Output: :class:`LoadData` on a regular, timezone-aware grid at the market
interval (15 minutes by default).

Rules (each violation is a :class:`vpp.errors.ValidationError` naming the column and row):

- timestamps carry a UTC offset (``2024-05-01T00:00:00+08:00``); naive timestamps need an
  explicit ``timezone`` and are then localised strictly: a wall time that is ambiguous or does
  not exist in that zone (DST changes) is an error, never a guess;
- timestamps are strictly increasing: duplicates and out-of-order rows are errors;
- values are numbers; empty cells are missing values; text is an error;
- the data interval is the most common step; it must divide or be a multiple of the target
  interval, and every step must be a whole number of data intervals.

Gap treatment (documented in docs/forecasting.md): missing intervals (absent rows or empty
cells) up to ``max_gap_minutes`` in a row are filled by linear interpolation in time and counted
in :attr:`LoadData.filled`; a longer gap (or a gap at either end) is an error unless
``keep_long_gaps`` is set, in which case it stays NaN: models then skip those targets and
metrics skip those intervals. Coarser data (30 or 60 min) is brought to 15 minutes by holding each
average for its sub-intervals (energy-preserving); finer data is averaged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vpp.errors import ValidationError

_OFFSET_RE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")


@dataclass
class LoadData:
    """Validated load (kW) on a regular aware grid of ``interval_minutes`` (the market's),
    read from data at ``source_interval_minutes``, plus optional exogenous series."""

    load_kw: pd.DataFrame
    source_interval_minutes: int
    interval_minutes: int
    temperature_c: pd.Series | None = None
    workday: pd.Series | None = None
    filled: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_load_csv(
    path: Path | str,
    *,
    timestamp_column: str = "timestamp",
    columns: list[str] | None = None,
    temperature_column: str | None = None,
    workday_column: str | None = None,
    timezone: str | None = None,
    interval_minutes: int,
    max_gap_minutes: int = 60,
    keep_long_gaps: bool = False,
) -> LoadData:
    """Read ``path`` and return validated :class:`LoadData` on the ``interval_minutes`` grid
    (the market interval, ``service.market_interval_minutes``; see the module rules)."""
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise ValidationError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise ValidationError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path}: not a readable CSV file: {str(exc).strip()}") from None
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return parse_load_frame(
            raw,
            timestamp_column=timestamp_column,
            columns=columns,
            temperature_column=temperature_column,
            workday_column=workday_column,
            timezone=timezone,
            interval_minutes=interval_minutes,
            max_gap_minutes=max_gap_minutes,
            keep_long_gaps=keep_long_gaps,
        )
    except ValidationError as exc:
        raise ValidationError(f"{path}: {exc.message}") from None


def _parse_timestamps(text: pd.Series, timezone: str | None) -> pd.DatetimeIndex:
    text = text.str.strip()
    has_offset = text.str.contains(_OFFSET_RE)
    if len(text) == 0:
        raise ValidationError("no data rows")
    if has_offset.any() and not has_offset.all():
        row = int(np.flatnonzero(~has_offset.to_numpy())[0])
        raise ValidationError(
            f"row {row + 2}: timestamp {text.iloc[row]!r} has no UTC offset while others do"
        )
    try:
        parsed = pd.to_datetime(text, format="ISO8601", utc=has_offset.all())
    except (ValueError, TypeError):
        bad = [
            i for i, v in enumerate(text)
            if pd.isna(pd.to_datetime(v, format="ISO8601", errors="coerce"))
        ]
        row = bad[0] if bad else 0
        raise ValidationError(f"row {row + 2}: not a timestamp: {text.iloc[row]!r}") from None
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise ValidationError(f"row {row + 2}: missing timestamp")
    idx = pd.DatetimeIndex(parsed)
    if has_offset.all():
        if timezone is not None:
            return idx.tz_convert(timezone)
        offsets = text.str.extract(f"({_OFFSET_RE.pattern})")[0].str.replace(":", "").unique()
        if len(offsets) > 1:
            raise ValidationError(
                f"timestamps carry several UTC offsets ({', '.join(sorted(offsets)[:3])}); "
                "name the time zone with --timezone"
            )
        off = offsets[0]
        if off == "Z":
            return idx.tz_convert("UTC")
        minutes = (int(off[1:3]) * 60 + int(off[3:5])) * (1 if off[0] == "+" else -1)
        from datetime import timedelta
        from datetime import timezone as dt_timezone

        return idx.tz_convert(dt_timezone(timedelta(minutes=minutes)))
    if timezone is None:
        raise ValidationError(
            f"row 2: timestamp {text.iloc[0]!r} has no UTC offset; write offsets "
            "(e.g. 2024-05-01T00:00:00+08:00) or name the zone with --timezone"
        )
    try:
        return idx.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
    except Exception as exc:  # pytz/zoneinfo raise different AmbiguousTimeError classes
        raise ValidationError(
            f"timestamp not unique or not existing in {timezone} (daylight-saving change): "
            f"{str(exc).splitlines()[0]}; write UTC offsets instead"
        ) from None


def _numeric(raw: pd.Series, name: str) -> pd.Series:
    text = raw.str.strip()
    values = pd.to_numeric(text.where(text != ""), errors="coerce")
    bad = values.isna() & (text != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValidationError(f"column {name!r}, row {row + 2}: not a number: {text.iloc[row]!r}")
    if np.isinf(values.to_numpy(dtype=float)).any():
        row = int(np.flatnonzero(np.isinf(values.to_numpy(dtype=float)))[0])
        raise ValidationError(f"column {name!r}, row {row + 2}: infinite value")
    return values.astype(float)


def _fill_gaps(
    s: pd.Series, interval_minutes: int, max_gap_minutes: int, keep_long_gaps: bool
) -> tuple[pd.Series, int]:
    """Interpolate runs of NaN up to ``max_gap_minutes``; return (series, count filled)."""
    na = s.isna().to_numpy()
    if not na.any():
        return s, 0
    limit = max_gap_minutes // interval_minutes
    # run-length of each NaN run
    edges = np.diff(np.concatenate([[0], na.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    fillable = np.zeros(len(s), dtype=bool)
    for a, b in zip(starts, ends, strict=True):
        at_edge = a == 0 or b == len(s)
        if b - a <= limit and not at_edge:
            fillable[a:b] = True
        elif not keep_long_gaps:
            where = "at the start" if a == 0 else ("at the end" if b == len(s) else "")
            raise ValidationError(
                f"column {s.name!r}: gap of {(b - a) * interval_minutes} min from "
                f"{s.index[a].isoformat()} {where}".rstrip()
                + f" is longer than the {max_gap_minutes} min that are interpolated"
                " (fill or cut the file, or keep long gaps as missing)"
            )
    filled = s.interpolate(method="time", limit_area="inside")
    out = s.where(~fillable, filled)
    return out, int(fillable.sum())


def parse_load_frame(
    raw: pd.DataFrame,
    *,
    timestamp_column: str = "timestamp",
    columns: list[str] | None = None,
    temperature_column: str | None = None,
    workday_column: str | None = None,
    timezone: str | None = None,
    interval_minutes: int,
    max_gap_minutes: int = 60,
    keep_long_gaps: bool = False,
) -> LoadData:
    """Validate a frame of strings (as read from CSV); the pure half of :func:`read_load_csv`."""
    have = list(raw.columns)
    extra = [c for c in (temperature_column, workday_column) if c]
    for name in [timestamp_column, *extra, *(columns or [])]:
        if name not in have:
            raise ValidationError(f"missing column {name!r} (columns: {', '.join(have)})")
    load_cols = columns or [c for c in have if c != timestamp_column and c not in extra]
    if not load_cols:
        raise ValidationError("no load columns: need a timestamp column and at least one kW column")
    idx = _parse_timestamps(raw[timestamp_column].astype(str), timezone)
    ns = idx.as_unit("ns").asi8
    dup = np.flatnonzero(np.diff(ns) == 0)
    if len(dup):
        r = int(dup[0])
        raise ValidationError(f"duplicate timestamp {idx[r].isoformat()} (rows {r + 2} and {r + 3})")
    back = np.flatnonzero(np.diff(ns) < 0)
    if len(back):
        r = int(back[0])
        raise ValidationError(
            f"timestamps not sorted: row {r + 3} ({idx[r + 1].isoformat()}) comes before "
            f"row {r + 2} ({idx[r].isoformat()})"
        )
    if len(idx) < 2:
        raise ValidationError("need at least two rows to know the data interval")
    steps = np.diff(ns) // 60_000_000_000
    src = int(pd.Series(steps).mode().iloc[0])
    if src <= 0 or (60 % src and src % 60):
        raise ValidationError(f"unsupported data interval of {src} min")
    if src % interval_minutes and interval_minutes % src:
        raise ValidationError(
            f"data interval {src} min neither divides nor is a multiple of {interval_minutes} min"
        )
    if (np.diff(ns) % (src * 60_000_000_000)).any():
        r = int(np.flatnonzero(np.diff(ns) % (src * 60_000_000_000))[0])
        raise ValidationError(
            f"row {r + 3}: timestamp {idx[r + 1].isoformat()} is off the {src}-minute grid"
        )
    series = {c: _numeric(raw[c].astype(str), c) for c in [*load_cols, *extra]}
    frame = pd.DataFrame({c: s.to_numpy() for c, s in series.items()}, index=idx)
    grid = pd.date_range(idx[0], idx[-1], freq=f"{src}min")
    frame = frame.reindex(grid)
    notes: list[str] = []
    filled: dict[str, int] = {}
    for c in frame.columns:
        frame[c], n = _fill_gaps(frame[c], src, max_gap_minutes, keep_long_gaps)
        if n:
            filled[c] = n
            notes.append(f"{c}: {n} missing {src}-min values interpolated")
    if src > interval_minutes:
        rep = src // interval_minutes
        fine = pd.date_range(grid[0], periods=len(grid) * rep, freq=f"{interval_minutes}min")
        frame = pd.DataFrame(np.repeat(frame.to_numpy(), rep, axis=0), index=fine,
                             columns=frame.columns)
        notes.append(f"{src}-min averages held over {rep} intervals of {interval_minutes} min")
    elif src < interval_minutes:
        frame = frame.resample(f"{interval_minutes}min").mean()
        notes.append(f"{src}-min values averaged to {interval_minutes} min")
    workday = None
    if workday_column:
        w = frame[workday_column]
        if not w.dropna().isin([0.0, 1.0]).all():
            raise ValidationError(f"column {workday_column!r} must hold 0 or 1")
        workday = w
    return LoadData(
        load_kw=frame[load_cols].astype(float),
        temperature_c=frame[temperature_column] if temperature_column else None,
        workday=workday,
        source_interval_minutes=src,
        interval_minutes=interval_minutes,
        filled=filled,
        notes=notes,
    )
