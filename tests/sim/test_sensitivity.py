"""The sensitivity harness (sim.sensitivity): factors, one share moved at a time, the tornado
chart and the command's bad input. The runs themselves are city-scale work (docs)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sim.scenarios.fleet import generate_fleet
from sim.scenarios.scenario import load_scenario
from sim.sensitivity import Factor, Outcome, factors, main, tornado, with_share

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scn():
    return load_scenario("zhuzhou-2025", ROOT / "config" / "scenarios")


def test_one_factor_per_segment_with_a_capped_range(scn):
    fs = factors(scn)
    assert [f.segment for f in fs] == [s.name for s in scn.segments]
    battery = next(f for f in fs if f.segment == "user-side-battery")
    assert (battery.low, battery.high) == pytest.approx((0.35, 1.0))  # 0.7 x 1.5 capped at 1
    with pytest.raises(ValueError, match="unknown segment"):
        factors(scn, segments=["nope"])


def test_moving_one_share_moves_only_that_segment(scn):
    base = Counter(d.segment for d in generate_fleet(scn).devices)
    moved = Counter(d.segment for d in generate_fleet(with_share(scn, "office", 0.6)).devices)
    assert moved["office"] > base["office"]
    assert {k: v for k, v in moved.items() if k != "office"} == \
        {k: v for k, v in base.items() if k != "office"}
    assert next(s for s in scn.segments if s.name == "office").enrolled_share == 0.30


def test_tornado_is_drawn(tmp_path):
    base = Outcome("base", 100, 50.0, 60.0, 1)
    rows = [(Factor("a", 0.5, 0.25, 0.75), Outcome("a low", 90, 40.0, 50.0, 1),
             Outcome("a high", 110, 58.0, 70.0, 1)),
            (Factor("b", 0.2, 0.1, 0.3), Outcome("b low", 95, 49.0, 59.0, 1),
             Outcome("b high", 105, 51.0, 61.0, 1))]
    tornado(base, rows, tmp_path / "t.png", 125.0)
    assert (tmp_path / "t.png").stat().st_size > 1000


@pytest.mark.parametrize("argv", [["--fraction", "0"], ["--segments", "nope"]])
def test_bad_input_is_refused_without_a_traceback(argv, tmp_path, capsys):
    assert main(["--out", str(tmp_path), *argv]) == 2
    assert capsys.readouterr().err.strip()


def test_the_sample_keeps_the_other_segments_devices_when_one_moves(scn):
    from sim.sensitivity import sample

    base = sample(generate_fleet(scn), 0.1)
    moved = sample(generate_fleet(with_share(scn, "rail-transit-equipment", 0.75)), 0.1)

    def names(f, seg_in):
        return sorted(d.spec.name for d in f.devices if (d.segment == "rail-transit-equipment")
                      == seg_in)

    assert names(base, False) == names(moved, False)
    assert set(names(base, True)) <= set(names(moved, True))
    assert 0.07 < len(base.devices) / len(generate_fleet(scn).devices) < 0.13
