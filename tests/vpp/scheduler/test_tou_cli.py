"""``vpp schedule --tou``: the batteries' schedule up to the call, its reserve and saving."""

from __future__ import annotations

import json

import pytest

from vpp.cli.main import main


def test_tou_json_shows_each_batterys_reserve_and_the_saving(capsys):
    rc = main(["schedule", "--generate", "40", "--event", "18:00-20:00", "--tou", "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    tou = json.loads(out)["tou"]
    assert tou["until"] == "18:00" and tou["status"] == "solved"
    assert tou["batteries"] == len(tou["reserves"]) > 0
    for r in tou["reserves"]:
        assert r["call_start_index"] == 72
        assert r["planned_soc_pct"] >= r["target_soc_pct"] - 0.05  # held at the call's start
    assert tou["reserve_kwh"] > 0
    assert tou["saving_fen"] == tou["without_fen"] - tou["with_fen"] > 0
    assert isinstance(tou["saving_fen"], int)


def test_tou_table_on_the_demo_fleet(capsys):
    rc = main(["schedule", "--fleet", "config/zhuzhou-demo.toml", "--event", "18:00-20:00",
               "--tou"])
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert rc == 0, out
    assert "Batteries until the call (18:00)" in out and "saving" in out
    assert "export past the site meter not used" in out  # hunan-2026: export does not count


@pytest.mark.parametrize("event, message", [("00:00-02:00", "midnight")])
def test_tou_bad_requests(event, message, capsys):
    rc = main(["schedule", "--generate", "20", "--event", event, "--tou"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
