"""The database edge of the performance record (:mod:`bidding.performance_record`), shared by
``vpp performance``, ``GET /api/v1/performance``, ``POST /api/v1/performance/remedies`` and
the daemon's intake (which refuses grid calls while the VPP is suspended or expelled).

Reads the programme's settled events (each event's current settlement version: its
performance ratio, judged against the band floor of the programme version in force on the
event's start, as settlement judged it) and the operator's remedies
(:class:`~vpp.performance_models.PerformanceRemedy`); the rules are the programme version's
in force on the as-of day.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from bidding.performance_record import (
    PerformanceRecord,
    RecordState,
    RemedyEntry,
    SettledResult,
    compute_record,
)
from bidding.programme import Programme, load_programme, read_programme_file
from vpp.db import session_scope
from vpp.domain.grid_calls import EventStatus
from vpp.domain.performance import PerformanceOut, RemedyIn, RemedyOut
from vpp.errors import ConfigError, ConflictError, NotFoundError, ValidationError
from vpp.models import AuditLog, GridEvent, Settlement
from vpp.performance_models import PerformanceRemedy


def _programme(name: str, programmes_dir: Path, on: date) -> Programme:
    try:
        return load_programme(name, programmes_dir, on)
    except NotFoundError as exc:
        raise ConfigError(f"key bidding.programme: {exc.message}") from None


def settled_results(session: Session, name: str, programmes_dir: Path) -> list[SettledResult]:
    """Every settled event of programme ``name`` with its current settlement's ratio and the
    band floor of the programme version in force on its start (oldest first)."""
    latest = (select(Settlement.event_id, func.max(Settlement.version).label("v"))
              .group_by(col(Settlement.event_id)).subquery())
    rows = session.exec(
        select(GridEvent.id, GridEvent.start, Settlement.performance_ratio)
        .join(Settlement, col(Settlement.event_id) == col(GridEvent.id))
        .join(latest, (latest.c.event_id == col(Settlement.event_id))
              & (latest.c.v == col(Settlement.version)))
        .where(GridEvent.programme == name, GridEvent.status == EventStatus.SETTLED.value)
        .order_by(col(GridEvent.start), col(GridEvent.id))).all()
    pf = read_programme_file(programmes_dir / f"{name}.toml")
    tz = ZoneInfo(pf.timezone)
    versions = sorted(pf.versions, key=lambda v: v.effective_from, reverse=True)
    out = []
    for event_id, start, ratio in rows:
        day = start.astimezone(tz).date()
        # an event before the first version cannot have been settled under it: the first
        version = next((v for v in versions if v.effective_from <= day), versions[-1])
        out.append(SettledResult(int(event_id or 0), start, float(ratio),
                                 version.band.lower_pct / 100))
    return out


def remedies_of(session: Session, name: str) -> list[PerformanceRemedy]:
    return list(session.exec(select(PerformanceRemedy).where(PerformanceRemedy.programme == name)
                             .order_by(col(PerformanceRemedy.remedied_on),
                                       col(PerformanceRemedy.id))).all())


def record_for(session: Session, name: str, programmes_dir: Path, at: datetime,
               extra: RemedyEntry | None = None) -> tuple[Programme, PerformanceRecord]:
    """The programme version in force on ``at`` (aware) and the VPP's record as of then
    (``extra``: a remedy not yet stored, to see what it would change)."""
    programme = _programme(name, programmes_dir, at)  # the local day in the programme's zone
    remedies = [RemedyEntry(r.remedied_on, r.note) for r in remedies_of(session, name)]
    if extra is not None:
        remedies.append(extra)
    record = compute_record(settled_results(session, name, programmes_dir), remedies,
                            programme.performance, ZoneInfo(programme.timezone), at)
    return programme, record


def bid_refusal(session: Session, name: str, programmes_dir: Path, at: datetime) -> str | None:
    """Why the VPP may not bid in programme ``name`` at ``at`` (suspended or expelled), or
    None (also when the programme keeps no record)."""
    _, record = record_for(session, name, programmes_dir, at)
    return record.reason if record.refuses_bids else None


def performance_view(session: Session, name: str, programmes_dir: Path,
                     at: datetime) -> PerformanceOut:
    """The record as the CLI and the API show it."""
    programme, record = record_for(session, name, programmes_dir, at)
    return PerformanceOut.model_validate({
        "programme": name, "programme_version": programme.effective_from,
        "as_of": record.as_of, "state": record.state.value, "since": record.since,
        "remedy_deadline": record.remedy_deadline,
        "awaiting_first_response": record.awaiting_first_response,
        "failures_in_window": record.failures_in_window,
        "suspensions_in_window": record.suspensions_in_window,
        "refuses_bids": record.refuses_bids, "reason": record.reason,
        "rules": record.rules.model_dump() if record.rules is not None else None,
        "events": record.verdicts, "changes": record.changes,
        "remedies": remedies_of(session, name)})


def performance_from_db(engine: Engine, name: str, programmes_dir: Path,
                        at: datetime) -> PerformanceOut:
    with session_scope(engine) as s:
        return performance_view(s, name, programmes_dir, at)


def add_remedy(session: Session, name: str, programmes_dir: Path, remedy: RemedyIn,
               actor: str, at: datetime) -> RemedyOut:
    """Record a remedy (audit-logged). Refused (:class:`ValidationError`) for a date in the
    future, and (:class:`ConflictError`) when it would change nothing: the VPP is not
    suspended, or the date is before the suspension or past its deadline."""
    programme, before = record_for(session, name, programmes_dir, at)
    if remedy.remedied_on > before.as_of:
        raise ValidationError(f"remedied_on {remedy.remedied_on} is in the future (today is "
                              f"{before.as_of} in {programme.timezone})")
    if programme.performance is None:
        raise ConflictError(f"programme {name} keeps no performance record: nothing to remedy")
    _, after = record_for(session, name, programmes_dir, at,
                          RemedyEntry(remedy.remedied_on, remedy.note))
    if after.state == before.state and not (
            before.state == RecordState.SUSPENDED and after.since != before.since):
        where = (f"suspended since {before.since}, remedy by {before.remedy_deadline}"
                 if before.state == RecordState.SUSPENDED else
                 f"{before.state.value}" + (f" since {before.since}" if before.since else ""))
        raise ConflictError(f"a remedy on {remedy.remedied_on} changes nothing: the VPP is "
                            f"{where}; a remedy ends a suspension, on or before its deadline")
    row = PerformanceRemedy(programme=name, remedied_on=remedy.remedied_on, note=remedy.note,
                            actor=actor)
    session.add(row)
    session.flush()
    session.add(AuditLog(actor=actor, action="performance_remedy",
                         subject=f"performance_remedy:{row.id}",
                         detail={"programme": name, "remedied_on": remedy.remedied_on.isoformat(),
                                 "note": remedy.note, "state_before": before.state.value,
                                 "state_after": after.state.value}))
    session.flush()
    return RemedyOut.model_validate(row)


def add_remedy_db(engine: Engine, name: str, programmes_dir: Path, remedy: RemedyIn,
                  actor: str, at: datetime) -> RemedyOut:
    with session_scope(engine) as s:
        return add_remedy(s, name, programmes_dir, remedy, actor, at)
