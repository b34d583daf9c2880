"""``vpp forecast`` on the packaged real data, and its exit codes for bad input.

The commands run in-process through ``vpp.cli.main.main`` (the function behind the installed
``vpp`` script), which turns errors into ``error: ...`` on stderr and the exit code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from vpp.cli.main import main

REAL = ["--temperature-column", "temperature_c", "--workday-column", "workday"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["forecast", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_backtest_json_on_real_data(vic_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "backtest", "--data", str(vic_csv), *REAL, "--days", "7",
                         "--estimators", "30", "--horizon", "48h", "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["sites"] == ["victoria"] and result["origins"] == 7
    assert result["horizon_hours"] == 48 and result["temperature"] is True
    assert result["calendar"] == "data"
    rows = {(r["method"], r["horizon"]): r for r in result["metrics"]}
    assert {m for m, _ in rows} == {"seasonal_naive", "lightgbm", "similar_days", "high_4_of_5",
                                    "10_of_10_adj"}
    assert ("lightgbm", "48h") in rows
    for r in result["metrics"]:
        assert r["rel_rmse"] is not None and 0 < r["rel_rmse"] < 0.5
    assert rows[("lightgbm", "day_ahead")]["pinball_kw"] > 0
    assert any("30-min averages" in n for n in result["notes"])


def test_backtest_table_and_plot(vic_csv: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "week.png"
    code, out, err = run(capsys, "backtest", "--data", str(vic_csv), "--site", "victoria",
                         *REAL, "--days", "8", "--estimators", "20", "--plot", str(png),
                         "--plot-week", "2014-02-25")
    assert code == 0, err
    assert "Rolling-origin backtest" in out and "10_of_10_adj" in out and "rel RMSE" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "nowhere"], "missing column 'nowhere'"),
        (["--horizon", "soon"], "--horizon must look like"),
        (["--horizon", "8d"], "--horizon must be between"),
        (["--plot", "/dev/null/x.png", "--days", "2", "--estimators", "5"],
         "cannot write plot"),
        (["--plot", "x.png", "--plot-week", "1999-01-01", "--days", "2", "--estimators", "5"],
         "no backtest days there"),
        (["--history-days", "70"], "not enough data for a backtest"),
    ],
)
def test_backtest_bad_arguments(vic_csv: Path, args: list[str], message: str,
                                capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    args = [a if a != "x.png" else str(tmp_path / "x.png") for a in args]
    code, _, err = run(capsys, "backtest", "--data", str(vic_csv), *REAL, *args)
    assert code == 2
    assert "error:" in err and message in " ".join(err.split())
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["2024-05-01T00:15:00+08:00,1", "2024-05-01T00:00:00+08:00,2"], "not sorted"),
        (["2024-05-01T00:00:00+08:00,1", "2024-05-01T00:00:00+08:00,2"], "duplicate timestamp"),
        (["2024-05-01T00:00:00+08:00,1", "2024-05-01T00:15:00+08:00,lots"], "not a number"),
        (["2024-05-01 00:00,1", "2024-05-01 00:15,2"], "no UTC offset"),
        (["2024-05-01T00:00:00+08:00,1", "2024-05-01T03:00:00+08:00,2",
          "2024-05-01T03:15:00+08:00,2"], "gap of 165 min"),
    ],
)
def test_backtest_rejects_bad_files(tmp_path: Path, rows: list[str], message: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,site_a\n" + "\n".join(rows) + "\n")
    code, out, err = run(capsys, "backtest", "--data", str(bad))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err


def test_baseline_command(vic_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "baseline", "--data", str(vic_csv), "--site", "victoria",
                         "--workday-column", "workday", "--start", "2014-02-25T14:00",
                         "--end", "2014-02-25T18:00", "--method", "x_of_y", "--x", "10",
                         "--y", "10", "--adjust", "--event-day", "2014-02-20", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert len(r["baseline_kw"]) == 16 and len(r["days_used"]) == 10
    assert r["excluded"]["2014-02-20"] == "event day"
    assert r["adjustment_kw"] is not None
    code, out, err = run(capsys, "baseline", "--data", str(vic_csv), "--site", "victoria",
                         "--workday-column", "workday", "--start", "2014-02-25T14:00",
                         "--end", "2014-02-25T18:00")
    assert code == 0 and "average of the 5 most recent working days" in out
    code, _, err = run(capsys, "baseline", "--data", str(vic_csv), "--site", "victoria",
                       "--start", "2014-01-03T14:00", "--end", "2014-01-03T18:00")
    assert code == 2 and "no baseline days available" in err
    code, _, err = run(capsys, "baseline", "--data", str(vic_csv), "--site", "victoria",
                       "--start", "2014-02-25T14:00", "--end", "2014-02-25T18:00",
                       "--method", "x_of_y", "--x", "6", "--y", "5")
    assert code == 2 and "must not exceed" in err


def test_predict_and_sample_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = tmp_path / "s.csv"
    code, _, err = run(capsys, "sample-data", str(sample), "--days", "30")
    assert code == 0, err
    out_csv = tmp_path / "fc.csv"
    code, out, err = run(capsys, "predict", "--data", str(sample), "--site", "victoria",
                         "--workday-column", "workday", "--out", str(out_csv))
    assert code == 0, err
    fc = pd.read_csv(out_csv)
    assert list(fc.columns) == ["ts", "site", "p10", "p50", "p90"]
    assert len(fc) == 48 * 4  # the configured 48 h at 15 minutes
    assert (fc["p10"] <= fc["p50"]).all() and (fc["p50"] <= fc["p90"]).all()
    assert fc["ts"].iloc[0] == "2014-01-31 00:00:00+10:00"
