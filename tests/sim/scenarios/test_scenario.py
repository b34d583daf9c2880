"""The scenario file: the Zhuzhou 2025 figures, and precise errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.scenarios.scenario import load_scenario
from vpp.errors import ConfigError

SCENARIOS = Path(__file__).resolve().parents[3] / "config" / "scenarios"


@pytest.fixture
def zhuzhou():
    return load_scenario("zhuzhou-2025", SCENARIOS)


def test_zhuzhou_peak_is_extrapolated_from_2020(zhuzhou) -> None:
    c = zhuzhou.city
    assert c.peak_2020_mw == pytest.approx(2120.4)
    assert c.system_peak_mw == pytest.approx(2500.0, abs=5.0)
    assert c.goal_mw == pytest.approx(125.0, abs=0.5)
    assert c.dr_goal_pct == 5.0


def test_every_segment_names_its_source(zhuzhou) -> None:
    for seg in zhuzhou.segments:
        assert "[plan]" in seg.source or "ASSUMPTION" in seg.source, seg.name
    kinds = {s.kind.value for s in zhuzhou.segments}
    assert kinds == {"commercial_building", "industrial_load", "ev_charger", "battery"}


def test_ev_posts_stay_within_the_plan(zhuzhou) -> None:
    ev = [s for s in zhuzhou.segments if s.kind.value == "ev_charger"]
    assert sum(s.population for s in ev) == 25000  # [plan] 25,000+ posts incl. residential
    enrolled = sum(s.enrolled for s in ev)
    assert 0 < enrolled < 0.5 * 25000


def _write(tmp_path: Path, text: str) -> Path:
    src = (SCENARIOS / "zhuzhou-2025.toml").read_text()
    p = tmp_path / "s.toml"
    p.write_text(text.format(src=src) if "{src}" in text else text)
    return p


def test_unknown_key_is_named(tmp_path: Path) -> None:
    src = (SCENARIOS / "zhuzhou-2025.toml").read_text()
    p = tmp_path / "bad.toml"
    p.write_text(src.replace("[scenario]\n", "[scenario]\ncolour = \"red\"\n", 1))
    with pytest.raises(ConfigError, match=r"bad\.toml: key scenario\.colour: unknown key"):
        load_scenario(p)


def test_inverted_distribution_is_refused(tmp_path: Path) -> None:
    src = (SCENARIOS / "zhuzhou-2025.toml").read_text()
    p = tmp_path / "bad.toml"
    p.write_text(src.replace('low = 0.20, high = 0.40', 'low = 0.40, high = 0.20', 1))
    with pytest.raises(ConfigError, match="uniform low=0.4 > high=0.2"):
        load_scenario(p)


def test_missing_scenario_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="scenario file not found.*known: zhuzhou-2025"):
        load_scenario("nowhere", SCENARIOS)


def test_not_toml(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text("[scenario\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_scenario(p)


def test_plan_target_variant_extends_the_grounded_scenario(zhuzhou) -> None:
    from sim.scenarios.fleet import generate_fleet

    var = load_scenario("zhuzhou-2025-plan-target", SCENARIOS)
    assert var.name == "zhuzhou-2025-plan-target" and var.scenario.extends == "zhuzhou-2025"
    assert var.city == zhuzhou.city and var.grid_operator == zhuzhou.grid_operator
    segs = {s.name: s for s in var.segments}
    base = {s.name: s for s in zhuzhou.segments}
    assert list(segs) == list(base)  # merged by name, order kept
    assert segs["ev-residential"].enrolled_share == 1.0
    assert segs["ev-residential"].population == base["ev-residential"].population
    assert segs["office"] == base["office"]
    posts = sum(segs[n].enrolled for n in ("ev-public-dc", "ev-public-ac", "ev-residential"))
    assert posts == 25_000  # the plan's 25,000+ posts, all enrolled
    assert len(generate_fleet(var)) > 20_000


def test_extends_loop_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[scenario]\nname = "a"\nextends = "b"\n')
    (tmp_path / "b.toml").write_text('[scenario]\nname = "b"\nextends = "a"\n')
    with pytest.raises(ConfigError, match="loops back"):
        load_scenario("a", tmp_path)
    (tmp_path / "c.toml").write_text('[scenario]\nname = "c"\nextends = "nowhere"\n')
    with pytest.raises(ConfigError, match="scenario file not found"):
        load_scenario("c", tmp_path)
