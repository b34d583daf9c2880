"""The pieces the full-stack run shares between its two processes: the held, shared clock and
the deterministic sample (both processes build it from the scenario alone)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sim.fullstack_fleet import PROFILE_MAX_KW, SharedClock, build_sample
from sim.scenarios import load_scenario

START = datetime(2025, 7, 4, 19, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_the_clock_is_held_until_released_and_two_processes_agree() -> None:
    a, b = SharedClock(60.0, START), SharedClock(60.0, START)
    assert not a.released and a.now() == START
    time.sleep(0.05)
    assert a.now() == START  # held: enrolment and history take no simulated time
    m0 = a.release()
    b.release(m0)  # the other process gets the same time.monotonic() value
    time.sleep(0.05)
    ta, tb = a.now(), b.now()
    assert START + timedelta(seconds=2) < ta and abs((tb - ta).total_seconds()) < 0.5
    assert a.accel == 60.0  # a SimClock: the simulated devices step their physics by it


def test_the_sample_is_the_same_in_both_processes() -> None:
    scn = load_scenario("zhuzhou-2025")
    one, two = build_sample(scn, 40, 30000), build_sample(scn, 40, 30000)
    assert one.where == two.where and one.call == two.call
    assert len(one.fleet) >= 40 and one.n_gateways == len({p for p, _ in one.where.values()})
    ports = sorted({p for p, _ in one.where.values()})
    assert ports == list(range(30000, 30000 + one.n_gateways))
    for d in one.fleet.devices:  # only what a shipped register map can express
        assert d.spec.rated_power_kw <= PROFILE_MAX_KW[d.spec.profile]
    assert one.call.event_type == "real_time" and one.call.end - one.call.start == timedelta(
        minutes=scn.grid_operator.real_time_duration_minutes)
    assert build_sample(scn, 40, 31000).where != one.where  # ports follow the base


def test_a_share_of_each_segments_chargers_runs_over_ocpp_in_both_versions() -> None:
    scn = load_scenario("zhuzhou-2025")
    one = build_sample(scn, 40, 30000)
    assert [cp.identity for cp in one.charge_points] == [
        cp.identity for cp in build_sample(scn, 40, 30000).charge_points]  # deterministic
    ocpp = {cp.identity for cp in one.charge_points}
    for seg in scn.segments:
        mine = [d for d in one.fleet.devices if d.segment == seg.name]
        assert sum(1 for d in mine if d.spec.name in ocpp) == round(seg.ocpp_share * len(mine))
    assert ocpp
    assert {cp.version for cp in one.charge_points} == {"1.6", "2.0.1"}
    assert all(cp.device.kind.value == "ev_charger" for cp in one.charge_points)
    # the rest, and only the rest, on the Modbus gateways; every owner enrolled
    assert set(one.where) == {d.spec.name for d in one.fleet.devices} - ocpp
    assert set(one.owner_names) == {d.owner for d in one.fleet.devices}
    cp = one.charge_points[0]
    assert one.enrolled_name(cp.device) == f"{cp.device.site}/{cp.identity}/c1"

    none = scn.model_copy(update={"segments": [s.model_copy(update={"ocpp_share": 0.0})
                                               for s in scn.segments]})
    assert build_sample(none, 40, 30000).charge_points == []


def test_only_chargers_speak_ocpp() -> None:
    import pytest

    from sim.scenarios.scenario import Segment
    from vpp.errors import ConfigError

    scn = load_scenario("zhuzhou-2025")
    battery = next(s for s in scn.segments if s.kind.value == "battery")
    with pytest.raises((ValueError, ConfigError), match="only EV chargers speak OCPP"):
        Segment.model_validate({**battery.model_dump(), "ocpp_share": 0.5})
