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
