"""Load CSV validation: clear errors for bad files, the documented gap and resampling rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.data import read_load_csv
from vpp.errors import ValidationError


def write(tmp_path: Path, text: str, name: str = "load.csv") -> Path:
    p = tmp_path / name
    p.write_text(text.strip() + "\n", encoding="utf-8")
    return p


def rows(n: int, start: str = "2024-05-01T00:00:00+08:00", freq: str = "15min",
         value: Callable[[int], float] = lambda i: 10.0 + i) -> list[tuple[str, float]]:
    idx = pd.date_range(pd.Timestamp(start), periods=n, freq=freq)
    return [(ts.isoformat(), value(i)) for i, ts in enumerate(idx)]


def csv(data: Sequence[tuple[str, object]], header: str = "timestamp,site_a") -> str:
    return header + "\n" + "\n".join(f"{t},{v}" for t, v in data)


def test_good_file(tmp_path: Path) -> None:
    d = read_load_csv(write(tmp_path, csv(rows(8))), interval_minutes=15)
    assert list(d.load_kw.columns) == ["site_a"]
    assert str(d.load_kw.index.tz) == "UTC+08:00"
    assert d.load_kw["site_a"].tolist() == [10.0 + i for i in range(8)]
    assert d.filled == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,site_a\n2024-05-01T00:00:00+08:00,1\n2024-05-01T00:15:00+08:00,2",
         "missing column 'timestamp'"),
        ("timestamp\n2024-05-01T00:00:00+08:00\n2024-05-01T00:15:00+08:00", "no load columns"),
        (csv([*rows(3)[:2], rows(3)[1], rows(4)[3]]), "duplicate timestamp"),
        (csv([rows(3)[0], rows(3)[2], rows(3)[1]]), "not sorted"),
        (csv([*rows(3), (rows(4)[3][0], "abc")]), r"column 'site_a', row 5: not a number: 'abc'"),
        (csv([*rows(3), (rows(4)[3][0], "inf")]), "infinite"),
        (csv([("2024-05-01 00:00", 1), ("2024-05-01 00:15", 2)]), "no UTC offset"),
        (csv([rows(2)[0], ("2024-05-01 00:15", 2)]), "row 3: .* no UTC offset while others do"),
        (csv([rows(2)[0], ("2024-05-01T25:00:00+08:00", 2)]), "row 3: not a timestamp"),
        (csv([("2024-05-01T00:00:00+08:00", 1), ("2024-05-01T00:15:00+09:00", 2)]),
         "several UTC offsets"),
        (csv([*rows(3), ("2024-05-01T00:50:00+08:00", 3)]), "off the 15-minute grid"),
        (csv([(t, v) for t, v in rows(12)][:1] + rows(12)[10:]), "gap of 135 min"),
        (csv([*rows(4)[:3], (rows(4)[3][0], "")]), "at the end"),
        ("timestamp,site_a\n", "no data rows"),
        ("", "file is empty"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as err:
        read_load_csv(write(tmp_path, text) if text else _empty(tmp_path), interval_minutes=15)
    assert str(err.value).startswith(str(tmp_path))
    assert "\n" not in str(err.value)


def _empty(tmp_path: Path) -> Path:
    p = tmp_path / "empty.csv"
    p.write_bytes(b"")
    return p


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="file not found"):
        read_load_csv(tmp_path / "nope.csv", interval_minutes=15)


def test_requested_column_missing(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="missing column 'site_b'"):
        read_load_csv(write(tmp_path, csv(rows(4))), columns=["site_b"], interval_minutes=15)


def test_short_gaps_are_interpolated_and_counted(tmp_path: Path) -> None:
    full = rows(10)
    data: list[tuple[str, object]] = [*full[:3], *full[5:]]  # two absent rows (30 min)
    data[5] = (data[5][0], "")  # and one empty cell
    d = read_load_csv(write(tmp_path, csv(data)), max_gap_minutes=30, interval_minutes=15)
    s = d.load_kw["site_a"]
    assert len(s) == 10 and s.notna().all()
    np.testing.assert_allclose(s.to_numpy(), [10.0 + i for i in range(10)])
    assert d.filled == {"site_a": 3}
    assert any("interpolated" in n for n in d.notes)


def test_long_gap_kept_when_asked(tmp_path: Path) -> None:
    data = rows(12)
    d = read_load_csv(write(tmp_path, csv(data[:2] + data[10:])), keep_long_gaps=True, interval_minutes=15)
    assert d.load_kw["site_a"].isna().sum() == 8


def test_naive_timestamps_with_zone(tmp_path: Path) -> None:
    text = csv([("2024-05-01 00:00", 1), ("2024-05-01 00:15", 2)])
    d = read_load_csv(write(tmp_path, text), timezone="Asia/Shanghai", interval_minutes=15)
    assert d.load_kw.index[0] == pd.Timestamp("2024-05-01 00:00", tz="Asia/Shanghai")


@pytest.mark.parametrize(
    "times",
    [
        ["2024-10-27 02:00", "2024-10-27 02:15", "2024-10-27 02:30"],  # happens twice in Berlin
        ["2024-03-31 01:45", "2024-03-31 02:00", "2024-03-31 02:15"],  # never happens in Berlin
    ],
)
def test_ambiguous_or_missing_wall_times_are_rejected(tmp_path: Path, times: list[str]) -> None:
    text = csv([(t, 1) for t in times])
    with pytest.raises(ValidationError, match="daylight-saving"):
        read_load_csv(write(tmp_path, text), timezone="Europe/Berlin", interval_minutes=15)


def test_half_hourly_is_held_over_quarter_hours(tmp_path: Path) -> None:
    text = csv(rows(3, freq="30min"), header="timestamp,site_a")
    d = read_load_csv(write(tmp_path, text), interval_minutes=15)
    assert d.source_interval_minutes == 30
    assert d.load_kw["site_a"].tolist() == [10.0, 10.0, 11.0, 11.0, 12.0, 12.0]
    assert d.load_kw.index.freqstr == "15min"


def test_five_minute_data_is_averaged(tmp_path: Path) -> None:
    d = read_load_csv(write(tmp_path, csv(rows(6, freq="5min"))), interval_minutes=15)
    assert d.load_kw["site_a"].tolist() == [11.0, 14.0]


def test_temperature_and_workday_columns(tmp_path: Path) -> None:
    lines = ["timestamp,a,b,temp,wd"] + [
        f"{t},{v},{2 * v},{20 + i},{1}" for i, (t, v) in enumerate(rows(4))
    ]
    d = read_load_csv(write(tmp_path, "\n".join(lines)), temperature_column="temp",
                      workday_column="wd", interval_minutes=15)
    assert list(d.load_kw.columns) == ["a", "b"]
    assert d.temperature_c is not None and d.temperature_c.iloc[-1] == 23
    assert d.workday is not None and (d.workday == 1).all()


def test_real_sample_csv(vic_csv: Path) -> None:
    d = read_load_csv(vic_csv, temperature_column="temperature_c", workday_column="workday", interval_minutes=15)
    assert d.source_interval_minutes == 30
    assert len(d.load_kw) == 63 * 96
    assert d.load_kw["victoria"].between(2e6, 1e7).all()
