"""Workers' heartbeats and gateway leases, in PostgreSQL (``cluster_worker``,
``gateway_lease``; migration 0008). Every time is the database's clock (``now()``), so the
machines of a cluster need not agree on theirs.

A worker is *live* while its ``heartbeat_at`` is within ``lease_s``. A lease is held until
``expires_at``; its owner renews it every heartbeat. :func:`take` moves a lease to a new owner
only once it has expired, in one statement (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``),
so two workers can never both take it; every change of owner moves the ``epoch``, the fencing
token a command is claimed under (:mod:`vpp.cluster.commands`). :func:`release` expires a
lease at once (a graceful hand-over) without changing its owner: the next owner's :func:`take`
moves it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session

from vpp.daemon.fleet_sync import LIVE_GATEWAY


@dataclass(frozen=True)
class Lease:
    gateway_id: int
    owner: str
    epoch: int
    expired: bool


def beat(s: Session, worker_id: str, role: str) -> None:
    """Record that ``worker_id`` is alive now (registering it the first time)."""
    s.execute(text(
        "INSERT INTO cluster_worker (worker_id, role, started_at, heartbeat_at) "
        "VALUES (:w, :r, now(), now()) ON CONFLICT (worker_id) DO UPDATE "
        "SET heartbeat_at = now(), role = EXCLUDED.role"), {"w": worker_id, "r": role})


def leave(s: Session, worker_id: str) -> None:
    """A graceful stop: the worker is gone and its leases expire now (taken at the others'
    next heartbeat, not after ``lease_s``)."""
    s.execute(text("DELETE FROM cluster_worker WHERE worker_id = :w"), {"w": worker_id})
    s.execute(text("UPDATE gateway_lease SET expires_at = now() - interval '1 second' "
                   "WHERE owner = :w"), {"w": worker_id})


def live_workers(s: Session, role: str, lease_s: float) -> list[str]:
    """Workers of ``role`` whose last heartbeat is within ``lease_s``, by name."""
    rows = s.execute(text(
        "SELECT worker_id FROM cluster_worker WHERE role = :r "
        "AND heartbeat_at > now() - :l * interval '1 second' ORDER BY worker_id"),
        {"r": role, "l": lease_s}).all()
    return [str(r[0]) for r in rows]


def live_gateways(s: Session) -> list[int]:
    """The Modbus gateways whose devices are polled (as :func:`vpp.daemon.fleet_sync.load_desired`
    reads them; OCPP charge points connect to a process instead)."""
    rows = s.execute(text(
        "SELECT id FROM gateway WHERE protocol = 'modbus' AND enrolment_state = ANY(:st) "
        "ORDER BY id"), {"st": list(LIVE_GATEWAY)}).all()
    return [int(r[0]) for r in rows]


def leases(s: Session) -> dict[int, Lease]:
    rows = s.execute(text(
        "SELECT gateway_id, owner, epoch, expires_at < now() FROM gateway_lease")).all()
    return {int(g): Lease(int(g), str(o), int(e), bool(x)) for g, o, e, x in rows}


def renew(s: Session, worker_id: str, gateway_ids: Iterable[int], lease_s: float
          ) -> dict[int, int]:
    """Extend the worker's leases on ``gateway_ids`` by ``lease_s`` from now; returns those it
    still owns (gateway -> epoch): a lease another worker took after it expired is not."""
    ids = sorted(set(gateway_ids))
    if not ids:
        return {}
    rows = s.execute(text(
        "UPDATE gateway_lease SET expires_at = now() + :l * interval '1 second' "
        "WHERE owner = :w AND gateway_id = ANY(:g) RETURNING gateway_id, epoch"),
        {"w": worker_id, "g": ids, "l": lease_s}).all()
    return {int(g): int(e) for g, e in rows}


def take(s: Session, worker_id: str, gateway_id: int, lease_s: float) -> int | None:
    """Take the lease on ``gateway_id`` if nobody holds it or it has expired; returns the new
    epoch, None when another worker still holds it."""
    row = s.execute(text(
        "INSERT INTO gateway_lease (gateway_id, owner, epoch, expires_at) "
        "VALUES (:g, :w, 1, now() + :l * interval '1 second') "
        "ON CONFLICT (gateway_id) DO UPDATE SET owner = EXCLUDED.owner, "
        "epoch = gateway_lease.epoch + 1, expires_at = EXCLUDED.expires_at "
        "WHERE gateway_lease.expires_at < now() RETURNING epoch"),
        {"g": gateway_id, "w": worker_id, "l": lease_s}).first()
    return int(row[0]) if row is not None else None


def release(s: Session, worker_id: str, gateway_ids: Iterable[int]) -> None:
    """Expire the worker's leases on ``gateway_ids`` now (it stopped polling them)."""
    ids = sorted(set(gateway_ids))
    if ids:
        s.execute(text("UPDATE gateway_lease SET expires_at = now() - interval '1 second' "
                       "WHERE owner = :w AND gateway_id = ANY(:g)"), {"w": worker_id, "g": ids})
