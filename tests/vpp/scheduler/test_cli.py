"""``vpp schedule`` end to end: the demo fleet, a generated fleet, a plot, bad arguments."""

from __future__ import annotations

import json

import pytest

from vpp.cli.main import main


def test_schedule_demo_fleet_with_plot(tmp_path, capsys):
    png = tmp_path / "plan.png"
    rc = main(["schedule", "--fleet", "config/zhuzhou-demo.toml", "--event", "18:00-20:00",
               "--plot", str(png)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "commercial_building" in out and "shortfall 0.0 kWh" in out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_schedule_generated_fleet_json(capsys):
    rc = main(["schedule", "--generate", "40", "--event", "19:00-20:30", "--reduction-kw", "500",
               "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    summary = json.loads(out)
    assert summary["devices"] == 40 and summary["reduction_kw_requested"] == 500


@pytest.mark.parametrize(
    "args, message",
    [
        (["--generate", "5", "--event", "20:00-18:00"], "--event"),
        (["--generate", "5", "--event", "18:00-20:00", "--day", "2001-01-01"], "in the past"),
        (["--fleet", "no/such.toml"], "file not found"),
        ([], "exactly one"),
        (["--generate", "5", "--event", "18:00-20:00", "--reduction-kw", "nan"], "reduction_kw"),
    ],
)
def test_schedule_bad_arguments(args, message, capsys):
    rc = main(["schedule", *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and "Traceback" not in err


def _day_prices(programme_name: str, programmes_dir, day: str) -> list[float]:
    from datetime import date, datetime

    import pandas as pd

    from bidding.programme import load_programme
    from vpp.timeutil import zone

    prog = load_programme(programme_name, programmes_dir, date.fromisoformat(day))
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=zone())
    index = pd.date_range(start, periods=96, freq="15min")
    return [float(p) for p in prog.tariff.price_series(index)]


def test_schedule_prices_energy_with_the_programmes_tariff(capsys):
    """The shipped programme's ToU tariff on the day of the call (July: its critical peak)."""
    from vpp.packaged import programmes_dir

    rc = main(["schedule", "--generate", "20", "--event", "19:00-20:00", "--day", "2027-07-15",
               "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    summary = json.loads(out)
    assert summary["programme"] == "hunan-2026"
    assert summary["price_yuan_per_kwh"] == _day_prices("hunan-2026", programmes_dir(),
                                                        "2027-07-15")
    assert len(set(summary["price_yuan_per_kwh"])) >= 3  # valley, flat, peak at least


def test_schedule_follows_a_configured_programme(tmp_path, capsys):
    """A programme of the operator's own directory prices the plan: its tariff, not another."""
    from vpp.packaged import programmes_dir

    own = tmp_path / "programmes"
    own.mkdir()
    text = (programmes_dir() / "hunan-2026.toml").read_text()
    assert "flat = 0.62" in text
    (own / "cheap.toml").write_text(text.replace('name = "hunan-2026"', 'name = "cheap"')
                                    .replace("flat = 0.62", "flat = 0.31"))
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'[bidding]\nprogramme = "cheap"\nprogrammes_dir = "{own.as_posix()}"\n')
    rc = main(["--config", str(cfg), "schedule", "--generate", "20", "--event", "19:00-20:00",
               "--day", "2027-03-10", "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    summary = json.loads(out)
    assert summary["programme"] == "cheap"
    prices = summary["price_yuan_per_kwh"]
    assert prices == _day_prices("cheap", own, "2027-03-10")
    assert prices != _day_prices("hunan-2026", programmes_dir(), "2027-03-10")
    assert 0.31 in prices
