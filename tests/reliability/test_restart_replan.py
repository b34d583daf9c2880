"""Found by the SIGKILL loop (benchmarks/bench_reliability.py): right after a restart, before
the first poll, every device looked offline, so the control loop re-planned the running event
(``device_offline``, excluding the devices not polled yet) and wrote the current interval's
setpoints a second time. A device not polled yet is not offline, and the minimum time between
plans counts from the plan's creation in the database, not from the process start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.vpp.api.conftest import Api
from vpp.daemon.control import ControlLoop
from vpp.daemon.fleet_runtime import FleetRuntime
from vpp.daemon.planning import Planner
from vpp.models import DispatchPlan, GridEvent
from vpp.poller import DeviceStats, Poller


def _loop(api: Api) -> tuple[ControlLoop, Poller]:
    poller = Poller(None)
    infra = api.parts.infra
    fleet = FleetRuntime(infra, poller)
    return ControlLoop(infra, fleet, Planner(infra, fleet)), poller


async def test_a_restarted_daemon_does_not_replan_before_the_first_poll(api: Api) -> None:
    loop, poller = _loop(api)
    now = datetime.now(UTC)
    ev = GridEvent(id=1, external_id="x", source="rest", event_type="real_time", programme="p",
                   start=now - timedelta(minutes=5), end=now + timedelta(minutes=25),
                   requested_kw=5.0, status="active")
    plan = DispatchPlan(id=1, event_id=1, horizon_start=ev.start, status="active",
                        created_at=now - timedelta(minutes=2), detail={"device_ids": [1, 2]})
    poller.stats = {1: DeviceStats(1, online=True), 2: DeviceStats(2, online=True)}  # not polled
    assert loop._replan_reason(ev, plan, now) is None  # min_replan_interval_s = 3600 in harness
    api.parts.settings.daemon.min_replan_interval_s = 60.0
    assert loop._replan_reason(ev, plan, now) is None  # unknown is not offline
    poller.stats[2].online = False  # polled and found offline: that is a reason
    assert loop._replan_reason(ev, plan, now) == "device_offline"
    fresh = plan.model_copy(update={"created_at": now - timedelta(seconds=10)})
    assert loop._replan_reason(ev, fresh, now) is None  # too soon after the last plan
