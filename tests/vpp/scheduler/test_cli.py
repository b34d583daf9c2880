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
