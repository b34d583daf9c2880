"""Many simulated OCPP charge points for ``vpp sim ocpp``: each connects to the central system,
retrying every ``retry_s`` while it is refused (not registered yet, daemon not up) or dropped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sim.device import Clock
from sim.ocpp_chargepoint import SimChargePoint
from vpp.ocpp_gateways import new_password

log = logging.getLogger(__name__)


def make_charge_points(n: int, version: str, connectors: int, rated_kw: float, clock: Clock,
                       meter_period_s: float, rate: Callable[[], float],
                       prefix: str = "SIM-CP") -> list[SimChargePoint]:
    """``version``: ``1.6``, ``2.0.1`` or ``mixed`` (alternating)."""
    out = []
    for k in range(n):
        v = version if version != "mixed" else ("2.0.1" if k % 2 else "1.6")
        out.append(SimChargePoint(f"{prefix}-{k + 1:05d}", new_password(), v,
                                  connectors=connectors, rated_kw=rated_kw, clock=clock,
                                  seed=k, meter_period_s=meter_period_s, rate=rate))
    return out


async def keep_connected(sim: SimChargePoint, url: str, retry_s: float = 5.0) -> None:
    while True:
        try:
            await sim.run(url)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 -- refused or dropped: try again
            log.info("%s: %s; retrying in %g s", sim.identity, str(exc).splitlines()[0],
                     retry_s)
        await asyncio.sleep(retry_s)


async def run_all(sims: list[SimChargePoint], url: str, seconds: float | None) -> None:
    tasks = [asyncio.create_task(keep_connected(s, url)) for s in sims]
    try:
        if seconds is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(seconds)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
