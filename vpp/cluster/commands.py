"""Setpoint commands through the database (``device_command``): from the planner to the poller
worker that owns the device's gateway, and back confirmed or failed.

``pending`` -> ``claimed`` (by a worker, under its lease's ``epoch``) -> ``confirmed`` |
``failed``. :func:`enqueue` inserts a command and sends a NOTIFY on the schema's channel in the
same transaction (delivered at commit); the owner LISTENs and also sweeps every
``cluster.command_sweep_s`` (a notification is not durable: one sent while no worker listened
is found by the sweep). :func:`claim` takes, in one statement with ``FOR UPDATE SKIP LOCKED``,
the pending commands of the gateways whose lease the worker holds, and the ``claimed`` ones
whose claim was made under an older epoch of the lease (their worker lost the gateway, most
likely died, between claiming and reporting): those come back ``retaken`` and the new owner
reads the device before writing (:mod:`vpp.cluster.executor`). :func:`finish` records the
outcome only while the claim is still the worker's. A pending command older than
``command_timeout_s`` is never executed (``failed``, expired): a late setpoint is not applied.
Times on the database's clock. PostgreSQL only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session

from device_adapters.protocol import SetpointResult

PENDING, CLAIMED, CONFIRMED, FAILED = "pending", "claimed", "confirmed", "failed"


def channel(s: Session) -> str:
    """The NOTIFY channel of this database schema's commands (schemas do not share one)."""
    schema = str(s.execute(text("SELECT current_schema()")).scalar())
    return f"vpp_commands_{schema}"[:63]


@dataclass(frozen=True)
class Claimed:
    """A command a worker took. ``retaken``: claimed before by a worker that lost the gateway;
    ``age_s``: since it was created (s)."""

    id: int
    device_id: int
    setpoint_kw: float | None
    retaken: bool
    age_s: float


@dataclass(frozen=True)
class Outcome:
    status: str  # confirmed | failed
    written_kw: float | None
    readback_kw: float | None
    clamped: bool
    verified: bool
    written: bool  # False: the device already held it, nothing written
    error: str | None

    @classmethod
    def of(cls, r: SetpointResult) -> Outcome:
        ok = r.error is None and r.verified  # written and read back as asked
        return cls(CONFIRMED if ok else FAILED, r.written_kw, r.readback_kw, r.clamped,
                   r.verified, True, r.error)

    def result(self, device_id: int, requested_kw: float) -> SetpointResult:
        """As the in-process write would have returned it (:func:`vpp.daemon.dispatch.outcome`
        then reads it the same way)."""
        return SetpointResult(device_id, requested_kw, self.written_kw or 0.0, self.clamped,
                              self.readback_kw, self.verified, self.error)


def enqueue(s: Session, device_id: int, setpoint_kw: float | None) -> int:
    """A command for ``device_id`` (None: release it); NOTIFY at commit. Returns its id."""
    row = s.execute(text(
        "INSERT INTO device_command (device_id, gateway_id, setpoint_kw, status, created_at, "
        "clamped, verified, written) SELECT id, gateway_id, :kw, 'pending', now(), false, "
        "false, false FROM device WHERE id = :d RETURNING id, gateway_id"),
        {"d": device_id, "kw": setpoint_kw}).first()
    if row is None:
        raise KeyError(device_id)
    s.execute(text("SELECT pg_notify(:ch, :gw)"), {"ch": channel(s), "gw": str(row[1])})
    return int(row[0])


def claim(s: Session, worker_id: str, gateway_ids: Iterable[int], timeout_s: float
          ) -> list[Claimed]:
    """Take the commands of ``gateway_ids`` (those the worker holds and polls); see the
    module docstring. Expires pending commands older than ``timeout_s`` first."""
    ids = sorted(set(gateway_ids))
    if not ids:
        return []
    s.execute(text(
        "UPDATE device_command SET status = 'failed', done_at = now(), error = 'expired: no "
        "worker took it in time' WHERE status = 'pending' AND gateway_id = ANY(:g) "
        "AND created_at < now() - :t * interval '1 second'"), {"g": ids, "t": timeout_s})
    rows = s.execute(text(
        "WITH mine AS (SELECT gateway_id, epoch FROM gateway_lease WHERE owner = :w "
        "  AND gateway_id = ANY(:g)), "
        "todo AS (SELECT c.id, c.status AS was FROM device_command c "
        "  JOIN mine m ON m.gateway_id = c.gateway_id "
        "  WHERE c.status = 'pending' OR (c.status = 'claimed' AND c.epoch < m.epoch) "
        "  ORDER BY c.id FOR UPDATE OF c SKIP LOCKED) "
        "UPDATE device_command c SET status = 'claimed', claimed_by = :w, epoch = m.epoch, "
        "  claimed_at = now() FROM todo, mine m "
        "WHERE c.id = todo.id AND m.gateway_id = c.gateway_id "
        "RETURNING c.id, c.device_id, c.setpoint_kw, todo.was, "
        "  extract(epoch FROM now() - c.created_at)"), {"w": worker_id, "g": ids}).all()
    return sorted((Claimed(int(i), int(d), None if kw is None else float(kw), was == CLAIMED,
                           float(age)) for i, d, kw, was, age in rows), key=lambda c: c.id)


def finish(s: Session, worker_id: str, command_id: int, out: Outcome) -> bool:
    """Record the outcome while the claim is still ``worker_id``'s; False when it is not (the
    gateway moved meanwhile: the new owner re-takes it and reads the device first)."""
    done = s.execute(text(
        "UPDATE device_command SET status = :st, done_at = now(), written_kw = :wk, "
        "readback_kw = :rb, clamped = :cl, verified = :ve, written = :wr, error = :er "
        "WHERE id = :i AND status = 'claimed' AND claimed_by = :w"),
        {"st": out.status, "wk": out.written_kw, "rb": out.readback_kw, "cl": out.clamped,
         "ve": out.verified, "wr": out.written, "er": (out.error or None) and out.error[:2000],
         "i": command_id, "w": worker_id})
    return bool(done.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Done:
    """A command that came back: its status and what the device did."""

    id: int
    device_id: int
    setpoint_kw: float | None
    outcome: Outcome


def results(s: Session, command_ids: Iterable[int]) -> dict[int, Done]:
    """The commands among ``command_ids`` that are confirmed or failed."""
    ids = sorted(set(command_ids))
    if not ids:
        return {}
    rows = s.execute(text(
        "SELECT id, device_id, setpoint_kw, status, written_kw, readback_kw, clamped, "
        "verified, written, error FROM device_command WHERE id = ANY(:i) "
        "AND status IN ('confirmed', 'failed')"), {"i": ids}).all()
    return {int(r[0]): Done(int(r[0]), int(r[1]), r[2], Outcome(
        str(r[3]), r[4], r[5], bool(r[6]), bool(r[7]), bool(r[8]), r[9])) for r in rows}


def give_up(s: Session, command_id: int, why: str) -> bool:
    """Fail a command nobody took yet (the dispatcher stopped waiting); False once claimed."""
    done = s.execute(text(
        "UPDATE device_command SET status = 'failed', done_at = now(), error = :e "
        "WHERE id = :i AND status = 'pending'"), {"i": command_id, "e": why[:2000]})
    return bool(done.rowcount)  # type: ignore[attr-defined]


def held_setpoints(s: Session, device_ids: Iterable[int], max_age_s: float
                   ) -> dict[int, float]:
    """Device -> the setpoint (kW) its newest confirmed command gave it, for devices whose
    newest confirmed command is a setpoint (not a release) confirmed within ``max_age_s`` (a
    market interval: the planner writes every interval's setpoints, an older one is stale):
    what a worker taking the gateway over keeps holding (heartbeats, leases) without writing
    it again, as after a restart."""
    ids = sorted(set(device_ids))
    if not ids:
        return {}
    rows = s.execute(text(
        "SELECT DISTINCT ON (device_id) device_id, setpoint_kw FROM device_command "
        "WHERE device_id = ANY(:d) AND status = 'confirmed' "
        "AND done_at > now() - :a * interval '1 second' ORDER BY device_id, id DESC"),
        {"d": ids, "a": max_age_s}).all()
    return {int(d): float(kw) for d, kw in rows if kw is not None}
