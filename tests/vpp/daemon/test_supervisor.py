"""Supervised loops: a failing step is reported and retried with backoff, never taking the
process down; a healthy loop keeps running beside it; stop() drains running steps."""

from __future__ import annotations

import asyncio

from vpp.daemon.metrics import Metrics
from vpp.daemon.supervisor import Supervisor


async def test_failing_loop_backs_off_and_recovers() -> None:
    metrics = Metrics()
    sup = Supervisor(metrics, backoff_base_s=0.02, backoff_max_s=0.1)
    calls = {"bad": 0, "good": 0}

    async def bad() -> None:
        calls["bad"] += 1
        if calls["bad"] <= 3:
            raise RuntimeError(f"device gateway exploded #{calls['bad']}")

    async def good() -> None:
        calls["good"] += 1

    sup.add("bad", bad, period_s=0.01)
    sup.add("good", good, period_s=0.01)
    sup.start()
    for _ in range(200):
        await asyncio.sleep(0.02)
        if calls["bad"] > 5:
            break
    st = {s.name: s for s in sup.statuses()}
    assert st["bad"].failures == 3 and st["bad"].consecutive_failures == 0
    assert st["bad"].last_error == "RuntimeError: device gateway exploded #3"
    assert st["bad"].iterations >= 2 and st["good"].iterations > 5
    text = metrics.render().decode()
    assert 'vpp_loop_restarts_total{loop="bad"} 3.0' in text
    assert 'vpp_loop_up{loop="good"} 1.0' in text
    await sup.stop(drain_timeout_s=1.0)
    assert {s.state for s in sup.statuses()} == {"stopped"}
    assert 'vpp_loop_up{loop="good"} 0.0' in metrics.render().decode()


async def test_stop_drains_a_running_step_and_wake_runs_at_once() -> None:
    sup = Supervisor(Metrics())
    finished = asyncio.Event()
    started = asyncio.Event()
    runs = []

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.set()

    async def rare() -> None:
        runs.append(1)

    sup.add("slow", slow, period_s=60)
    sup.add("rare", rare, period_s=60)
    sup.start()
    await started.wait()
    await asyncio.sleep(0.01)
    assert len(runs) == 1
    sup.wake("rare")
    for _ in range(50):
        await asyncio.sleep(0.01)
        if len(runs) == 2:
            break
    assert len(runs) == 2
    await sup.stop(drain_timeout_s=5.0)
    assert finished.is_set()  # the running step completed; it was not cancelled


async def test_a_step_that_hangs_is_timed_out_and_reported() -> None:
    sup = Supervisor(Metrics(), backoff_base_s=0.01)

    async def hang() -> None:
        await asyncio.sleep(10)

    sup.add("hang", hang, period_s=0.01, timeout_s=0.05)
    sup.start()
    for _ in range(100):
        await asyncio.sleep(0.02)
        if sup.statuses()[0].failures:
            break
    assert sup.statuses()[0].last_error == "TimeoutError"
    await sup.stop(drain_timeout_s=0.2)


async def test_a_fixed_rate_loop_pauses_only_for_what_its_step_left_of_the_period() -> None:
    """Polling "every second" must start a cycle every second: the pause after a step is the
    period minus the step (none after an overrun), not the period again (the load benchmark
    polled every ~1.5 s: a 0.5 s cycle + 1 s). Checked on the pauses asked for, not on time."""
    sup = Supervisor(Metrics())
    pauses: dict[str, list[float]] = {"rate": [], "delay": [], "overrun": []}
    step_s = {"rate": 0.05, "delay": 0.05, "overrun": 0.25}

    def make(name: str):  # noqa: ANN202
        async def step() -> None:
            await asyncio.sleep(step_s[name])
        return step

    real_sleep = sup._sleep

    async def record(seconds: float, loop) -> None:  # noqa: ANN001
        name = next(n for n, lp in sup._loops.items() if lp is loop)
        pauses[name].append(seconds)
        await real_sleep(min(seconds, 0.01), loop)

    sup._sleep = record  # type: ignore[method-assign]
    sup.add("rate", make("rate"), period_s=0.2, fixed_rate=True)
    sup.add("delay", make("delay"), period_s=0.2)
    sup.add("overrun", make("overrun"), period_s=0.2, fixed_rate=True)
    sup.start()
    while min(len(v) for v in pauses.values()) < 3:
        await asyncio.sleep(0.02)
    await sup.stop(drain_timeout_s=1.0)
    assert all(0.0 <= p <= 0.2 - 0.05 for p in pauses["rate"]), pauses["rate"]
    assert all(p == 0.2 for p in pauses["delay"]), pauses["delay"]
    assert all(p == 0.0 for p in pauses["overrun"]), pauses["overrun"]
