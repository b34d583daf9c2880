"""Named fault-injection points for the crash tests; no-ops unless ``VPP_FAILPOINTS`` names them.

``VPP_FAILPOINTS="ledger.posted=pause:2"`` (comma-separated ``name=pause:<seconds>``): when the
process reaches a named point it logs ``failpoint reached`` (WARNING, ``vpp.failpoints``, with
``failpoint=<name>``) and pauses there, so that a test can SIGKILL it *at* that point, e.g.
inside the ledger transaction of a settlement, rather than hoping a random kill lands there.
Nothing else changes: the code around a point is the production code. Read once per process.

Points (grep ``failpoints.reach``): ``settle.start`` (an event is about to be settled),
``ledger.posted`` (a settlement's rows are written, the transaction not yet committed),
``settle.committed`` (the settlement is committed, not yet logged), ``command.written`` (a
poller worker of a cluster wrote a setpoint command, not yet confirmed: vpp.cluster.executor).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time

from vpp.errors import ConfigError

log = logging.getLogger("vpp.failpoints")
ENV = "VPP_FAILPOINTS"


@functools.cache
def configured() -> dict[str, float]:
    """Point name -> pause in seconds, from ``VPP_FAILPOINTS``."""
    out: dict[str, float] = {}
    for item in filter(None, (x.strip() for x in os.environ.get(ENV, "").split(","))):
        name, _, action = item.partition("=")
        kind, _, arg = action.partition(":")
        try:
            seconds = float(arg)
        except ValueError:
            seconds = -1.0
        if kind != "pause" or not seconds >= 0:
            raise ConfigError(f"{ENV}: {item!r}: expected <name>=pause:<seconds>")
        out[name.strip()] = seconds
    return out


def _hit(name: str) -> float | None:
    seconds = configured().get(name) if os.environ.get(ENV) else None
    if seconds is not None:
        log.warning("failpoint reached", extra={"failpoint": name, "pause_s": seconds})
    return seconds


def reach(name: str) -> None:
    """A named point in code that runs in a worker thread (pauses the thread)."""
    seconds = _hit(name)
    if seconds:
        time.sleep(seconds)


async def reach_async(name: str) -> None:
    """A named point in a coroutine (pauses the coroutine, not the event loop)."""
    seconds = _hit(name)
    if seconds:
        await asyncio.sleep(seconds)
