"""A poller worker's share of the gateways, kept by one supervised loop (``cluster``).

Each step (every ``cluster.heartbeat_s``), in one transaction on the database's clock: record
this worker's heartbeat, renew the leases it holds, read the live poller workers and the live
gateways, work out the share each should own (:func:`vpp.cluster.share.assign`), take the
leases of its own share that are free or expired, and mark as *leaving* the gateways it holds
that now belong to another live worker. A leaving gateway is still leased but no longer
polled: the fleet drops it at its next poll step, the telemetry already read is flushed, and
only then :meth:`GatewayShare.release_detached` expires the lease, so the next owner starts
polling after this one stopped. A worker that dies stops renewing; its leases expire
``lease_s`` after its last renewal and the others take them at their next step: a gateway is
without a poller for at most ``lease_s + heartbeat_s`` (plus one poll step). A worker that
cannot renew stops polling once its leases may have expired (:meth:`GatewayShare.current`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sqlmodel import Session

from vpp.cluster import leases
from vpp.cluster.share import assign
from vpp.config_cluster import ClusterSettings
from vpp.daemon.dbexec import Db

log = logging.getLogger("vpp.cluster")

POLLER = "poller"


@dataclass
class ShareView:
    """What one step found: the leases held (gateway -> epoch), the gateways to hand over, the
    live poller workers."""

    held: dict[int, int] = field(default_factory=dict)
    leaving: set[int] = field(default_factory=set)
    workers: list[str] = field(default_factory=list)


def share_step(s: Session, worker_id: str, held: set[int], lease_s: float) -> ShareView:
    """One membership step for ``worker_id`` (see the module docstring)."""
    leases.beat(s, worker_id, POLLER)
    out = ShareView(held=leases.renew(s, worker_id, held, lease_s))
    out.workers = leases.live_workers(s, POLLER, lease_s)
    want = assign(leases.live_gateways(s), out.workers)
    for gid, owner in sorted(want.items()):
        if owner == worker_id and gid not in out.held:
            epoch = leases.take(s, worker_id, gid, lease_s)
            if epoch is not None:
                out.held[gid] = epoch
    out.leaving = {g for g in out.held if want.get(g) != worker_id}
    return out


class GatewayShare:
    """The gateways this poller worker holds and polls. ``version`` moves whenever the set to
    poll changed (the fleet reloads at its next poll step)."""

    def __init__(self, db: Db, settings: ClusterSettings, worker_id: str) -> None:
        self.db = db
        self.settings = settings
        self.worker_id = worker_id
        self.version = 0
        self.held: dict[int, int] = {}  # gateway -> lease epoch
        self.leaving: set[int] = set()
        self.workers: list[str] = []
        self._valid_until = 0.0  # monotonic s

    def polled(self) -> frozenset[int]:
        """The gateways to poll: held and not being handed over."""
        return frozenset(set(self.held) - self.leaving)

    def current(self) -> bool:
        """Whether the leases this worker renewed last are still valid by its own clock
        (counted from before the renewal was sent, so never later than the database's
        expiry): a worker that cannot renew (database unreachable, process stalled) stops
        polling once they may have passed to another worker."""
        return time.monotonic() < self._valid_until

    async def step(self) -> None:
        before = self.polled()
        sent = time.monotonic()
        view = await self.db.run(share_step, self.worker_id, set(self.held),
                                 self.settings.lease_s)
        self._valid_until = sent + self.settings.lease_s
        lost = set(self.held) - set(view.held) - self.leaving
        if lost:
            log.warning("gateway leases lost to another worker: %s", sorted(lost),
                        extra={"worker_id": self.worker_id})
        self.held, self.leaving, self.workers = view.held, view.leaving, view.workers
        if self.polled() != before:
            log.info("gateway share changed: polling %d gateway(s), handing over %d",
                     len(self.polled()), len(self.leaving),
                     extra={"worker_id": self.worker_id, "workers": self.workers})
            self.version += 1

    async def release_detached(self, polled_now: set[int]) -> None:
        """Expire the leases of leaving gateways the fleet no longer polls (``polled_now``:
        the gateways it has connections to, after its reload and flush)."""
        done = {g for g in self.leaving if g not in polled_now}
        if not done:
            return
        await self.db.run(leases.release, self.worker_id, done)
        for g in done:
            self.held.pop(g, None)
        self.leaving -= done
        log.info("gateways handed over: %s", sorted(done), extra={"worker_id": self.worker_id})

    async def leave(self) -> None:
        """A graceful stop: expire every lease now, leave the worker list."""
        await self.db.run(leases.leave, self.worker_id)
        self.held.clear()
        self.leaving.clear()
