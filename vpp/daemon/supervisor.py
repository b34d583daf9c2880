"""Supervised background loops.

Each loop is a coroutine function doing one *step* (poll the fleet once, plan once, ...). The
supervisor runs it every ``period_s`` (or sooner when its wake event is set), with a timeout.
By default ``period_s`` is the pause *between* steps; a ``fixed_rate`` loop (polling) starts a
step every ``period_s`` instead, the pause being what the step left of its period (none when it
overran), so that "poll every second" is every second and not every 1 s + a cycle.
A step that raises is logged with its error, counted, and retried after an exponential backoff
(``backoff_base_s * 2**n``, capped at ``backoff_max_s``); it never takes the process down.
:meth:`Supervisor.stop` drains: no new steps start, running steps get ``drain_timeout_s`` to
finish, then they are cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vpp.daemon.metrics import Metrics

log = logging.getLogger("vpp.daemon.supervisor")

Step = Callable[[], Awaitable[None]]


@dataclass
class LoopStatus:
    """What the operator sees about one loop (``GET /api/v1/daemon/loops``)."""

    name: str
    period_s: float
    state: str = "starting"  # starting | running | backoff | stopped
    iterations: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_ok_at: datetime | None = None
    last_step_seconds: float | None = None


@dataclass
class _Loop:
    step: Step
    status: LoopStatus
    timeout_s: float
    fixed_rate: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Supervisor:
    def __init__(self, metrics: Metrics, backoff_base_s: float = 0.5,
                 backoff_max_s: float = 60.0) -> None:
        self.metrics = metrics
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._loops: dict[str, _Loop] = {}
        self._stopping = asyncio.Event()

    def add(self, name: str, step: Step, period_s: float, timeout_s: float | None = None,
            fixed_rate: bool = False) -> None:
        if name in self._loops:
            raise ValueError(f"loop {name!r} added twice")
        self._loops[name] = _Loop(
            step=step, status=LoopStatus(name=name, period_s=period_s),
            timeout_s=timeout_s if timeout_s is not None else max(30.0, 10 * period_s),
            fixed_rate=fixed_rate,
        )

    def has(self, name: str) -> bool:
        return name in self._loops

    def set_period(self, name: str, period_s: float) -> None:
        """Change loop ``name``'s period from its next pause on (e.g. the heartbeat loop, whose
        period follows the shortest device watchdog)."""
        if not period_s > 0:
            raise ValueError(f"loop {name!r}: period must be > 0 s, got {period_s!r}")
        self._loops[name].status.period_s = period_s

    def wake(self, name: str) -> None:
        """Run loop ``name`` now instead of at its next period."""
        loop = self._loops.get(name)
        if loop is not None:
            loop.wake.set()

    def statuses(self) -> list[LoopStatus]:
        return [lp.status for lp in self._loops.values()]

    def start(self) -> None:
        for name, loop in self._loops.items():
            loop.task = asyncio.create_task(self._run(name, loop), name=f"vpp-loop-{name}")
            loop.task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        # A loop task only ends on stop; anything else is a bug we survive by restarting it.
        if self._stopping.is_set() or task.cancelled():
            return
        name = task.get_name().removeprefix("vpp-loop-")
        exc = task.exception()
        log.error("loop task ended unexpectedly; restarting", extra={"loop": name,
                                                                    "error": repr(exc)})
        loop = self._loops[name]
        self.metrics.loop_restarts.labels(name).inc()
        loop.task = asyncio.create_task(self._run(name, loop), name=task.get_name())
        loop.task.add_done_callback(self._on_done)

    async def _run(self, name: str, loop: _Loop) -> None:
        st = loop.status
        self.metrics.loop_up.labels(name).set(1)
        try:
            while not self._stopping.is_set():
                loop.wake.clear()
                t0 = time.perf_counter()
                try:
                    st.state = "running"
                    await asyncio.wait_for(loop.step(), timeout=loop.timeout_s)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 -- supervised: report, back off, retry
                    st.failures += 1
                    st.consecutive_failures += 1
                    st.last_error = _one_line(exc)
                    st.state = "backoff"
                    self.metrics.loop_restarts.labels(name).inc()
                    delay = min(self.backoff_max_s,
                                self.backoff_base_s * 2 ** (st.consecutive_failures - 1))
                    log.error("loop step failed; retrying after backoff",
                              exc_info=not isinstance(exc, TimeoutError),
                              extra={"loop": name, "error": st.last_error,
                                     "backoff_s": round(delay, 3)})
                    await self._sleep(delay, loop)
                    continue
                finally:
                    st.last_step_seconds = time.perf_counter() - t0
                st.iterations += 1
                st.consecutive_failures = 0
                st.last_ok_at = datetime.now(UTC)
                pause = st.period_s
                if loop.fixed_rate:
                    pause = max(0.0, st.period_s - (time.perf_counter() - t0))
                await self._sleep(pause, loop)
        finally:
            st.state = "stopped"
            self.metrics.loop_up.labels(name).set(0)

    async def _sleep(self, seconds: float, loop: _Loop) -> None:
        stop = asyncio.ensure_future(self._stopping.wait())
        wake = asyncio.ensure_future(loop.wake.wait())
        try:
            await asyncio.wait({stop, wake}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (stop, wake):
                f.cancel()
            await asyncio.gather(stop, wake, return_exceptions=True)

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Let running steps finish (up to ``drain_timeout_s``), then cancel what remains."""
        self._stopping.set()
        tasks = [lp.task for lp in self._loops.values() if lp.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=drain_timeout_s)
        for t in pending:
            log.warning("loop did not drain in time; cancelling",
                        extra={"loop": t.get_name().removeprefix("vpp-loop-")})
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
