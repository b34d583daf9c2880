"""The domain model, as database tables (sqlmodel).

Conventions: every timestamp is aware (stored UTC via :class:`AwareDateTime`); powers in kW,
energies in kWh; money in integer fen (1 yuan = 100 fen, ``*_fen`` columns); prices as exact
decimals (``DecimalString``). The schema is owned by Alembic migrations in
``vpp/migrations/versions``; never ``create_all`` outside a throwaway test.

The audit log and the ledger are append-only: database triggers refuse UPDATE and DELETE.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Table, UniqueConstraint
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select as sa_select
from sqlmodel import Field, Session, SQLModel

from vpp.domain.grid_calls import EventStatus
from vpp.types import AwareDateTime, DecimalString


def utcnow() -> datetime:
    return datetime.now(UTC)


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a ``table=True`` model: ``model.__table__``, typed for mypy."""
    return cast(Table, sa_inspect(model).local_table)


class Role(StrEnum):
    OPERATOR = "operator"
    OWNER = "owner"
    GRID = "grid"


class EnrolmentState(StrEnum):
    REGISTERED = "registered"
    PROBING = "probing"
    ACTIVE = "active"
    FAILED = "failed"
    OFFLINE = "offline"
    RETIRED = "retired"  # out of service; rows and history kept (a probe returns it to service)


class DeviceStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    OFFLINE = "offline"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    RETIRED = "retired"  # out of service; rows and history kept (a probe returns it to service)


class Owner(SQLModel, table=True):
    """A device owner (building, plant, charging operator, battery owner)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=200)
    contact: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)


class ApiToken(SQLModel, table=True):
    """A bearer token; only its SHA-256 hash is stored. ``owner_id`` is set for owner tokens.

    A token is valid until ``expires_at`` (issue time + the role's ``[api] token_ttl_days``)
    unless revoked first. A rotation issues a new token, records it in ``replaced_by_id`` and
    brings this one's ``expires_at`` forward to the end of the grace period (:mod:`vpp.tokens`).
    """

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    role: str = Field(max_length=20)
    owner_id: int | None = Field(default=None, foreign_key="owner.id", index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    label: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=AwareDateTime)
    expires_at: datetime = Field(sa_type=AwareDateTime)
    replaced_by_id: int | None = Field(default=None, foreign_key="api_token.id")


class Site(SQLModel, table=True):
    """A metering point of an owner (one building, plant, car park)."""

    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_site_owner_name"),)
    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="owner.id", index=True)
    name: str = Field(max_length=200)
    region: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)


class Gateway(SQLModel, table=True):
    """A gateway registered by an owner; devices are unit ids behind it. ``protocol``:
    ``modbus`` (a Modbus TCP gateway at host:port) or ``ocpp`` (a charge point that connects to
    the daemon: ``host`` is its identity, ``port`` 0, connectors are unit ids; :mod:`vpp.ocpp`)."""

    __table_args__ = (UniqueConstraint("host", "port", name="uq_gateway_endpoint"),)
    id: int | None = Field(default=None, primary_key=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    owner_id: int = Field(foreign_key="owner.id", index=True)
    host: str = Field(max_length=255)
    port: int = 502
    protocol: str = Field(default="modbus", max_length=20)
    ocpp_password_hash: str | None = Field(default=None, max_length=200)
    enrolment_state: str = Field(default=EnrolmentState.REGISTERED.value, max_length=20)
    last_probe_at: datetime | None = Field(default=None, sa_type=AwareDateTime)
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)


class Device(SQLModel, table=True):
    """A controllable device. Limits are the declared safe setpoint range in kW (see
    :mod:`vpp.device_kinds` for the sign convention); ``params`` holds the kind's parameters and
    ``preferences`` the owner's (comfort band, EV departure, reserve SoC)."""

    __table_args__ = (UniqueConstraint("gateway_id", "unit_id", name="uq_device_gateway_unit"),)
    id: int | None = Field(default=None, primary_key=True)
    gateway_id: int = Field(foreign_key="gateway.id", index=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    owner_id: int = Field(foreign_key="owner.id", index=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=40, index=True)
    unit_id: int
    profile: str = Field(max_length=100)
    rated_power_kw: float
    min_setpoint_kw: float
    max_setpoint_kw: float
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    preferences: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    status: str = Field(default=DeviceStatus.PENDING.value, max_length=20)
    status_detail: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)


class DeviceProfileRow(SQLModel, table=True):
    """A device profile submitted by an owner (or an operator, ``owner_id`` unset: usable by
    every owner) through the API. ``body`` is the profile's data, validated exactly like the
    packaged ``config/device_profiles/*.toml`` (:func:`device_adapters.profile.parse_profile`);
    a name is unique across stored and packaged profiles."""

    __tablename__ = "device_profile"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    kind: str = Field(max_length=40)
    owner_id: int | None = Field(default=None, foreign_key="owner.id", index=True)
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)


class FleetRevision(SQLModel, table=True):
    """One row (``id = 1``): a counter moved by every committed change to the fleet (gateway,
    device and stored-profile rows; see :func:`_bump_fleet_revision`). A running daemon reads
    it once per poll cycle and reloads its fleet when it moved, whichever process wrote."""

    __tablename__ = "fleet_revision"
    id: int = Field(default=1, primary_key=True)
    revision: int = Field(default=0, sa_type=BigInteger)


class TelemetryReading(SQLModel, table=True):
    """One poll of one device. Indexed by (device, time) for per-device range queries."""

    __tablename__ = "telemetry"
    __table_args__ = (Index("ix_telemetry_device_ts", "device_id", "ts"),)
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    device_id: int = Field(foreign_key="device.id")
    ts: datetime = Field(sa_type=AwareDateTime)
    power_kw: float | None = None
    energy_kwh: float | None = None
    soc_pct: float | None = None
    available: bool = True
    flexibility_kw: float | None = None
    latency_ms: float | None = None
    # kW at the site's grid connection behind which the device sits (+ import, - export), from
    # the device's site meter (a hybrid inverter's grid meter); None: no site meter
    site_import_kw: float | None = None


class ClusterWorker(SQLModel, table=True):
    """A ``vpp serve`` process of a cluster (:mod:`vpp.cluster`): alive while ``heartbeat_at``
    (the database's clock) is within ``cluster.lease_s``."""

    __tablename__ = "cluster_worker"
    worker_id: str = Field(primary_key=True, max_length=100)
    role: str = Field(max_length=20)  # poller | planner
    started_at: datetime = Field(sa_type=AwareDateTime)
    heartbeat_at: datetime = Field(sa_type=AwareDateTime)


class GatewayLease(SQLModel, table=True):
    """Which poller worker owns a gateway, until ``expires_at`` (the database's clock);
    ``epoch`` moves at every change of owner (the fencing token of its commands)."""

    __tablename__ = "gateway_lease"
    gateway_id: int = Field(primary_key=True, foreign_key="gateway.id", ondelete="CASCADE")
    owner: str = Field(max_length=100)
    epoch: int = Field(default=1, sa_type=BigInteger)
    expires_at: datetime = Field(sa_type=AwareDateTime)


class DeviceCommand(SQLModel, table=True):
    """A setpoint for the poller worker that owns the device's gateway: ``pending`` ->
    ``claimed`` (by ``claimed_by`` under lease ``epoch``) -> ``confirmed`` | ``failed``.
    ``setpoint_kw`` None: release the device. kW; times on the database's clock."""

    __tablename__ = "device_command"
    __table_args__ = (Index("ix_device_command_gateway_status", "gateway_id", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    device_id: int = Field(foreign_key="device.id", ondelete="CASCADE")
    gateway_id: int = Field(foreign_key="gateway.id", ondelete="CASCADE")
    setpoint_kw: float | None = None
    status: str = Field(default="pending", max_length=20)
    created_at: datetime = Field(sa_type=AwareDateTime)
    claimed_by: str | None = Field(default=None, max_length=100)
    epoch: int | None = Field(default=None, sa_type=BigInteger)
    claimed_at: datetime | None = Field(default=None, sa_type=AwareDateTime)
    done_at: datetime | None = Field(default=None, sa_type=AwareDateTime)
    written_kw: float | None = None
    readback_kw: float | None = None
    clamped: bool = False
    verified: bool = False
    written: bool = False  # False when the device already held it (a command taken over)
    error: str | None = Field(default=None, max_length=2000)


class GridEvent(SQLModel, table=True):
    """A call from the grid: day-ahead invitation or real-time call, peak shaving or valley filling."""

    __tablename__ = "grid_event"
    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=200, unique=True, index=True)
    source: str = Field(max_length=20)  # rest | openadr | cli | sim
    event_type: str = Field(max_length=20)  # day_ahead | real_time
    direction: str = Field(default="peak_shaving", max_length=20)
    programme: str = Field(max_length=100)
    start: datetime = Field(sa_type=AwareDateTime)
    end: datetime = Field(sa_type=AwareDateTime)
    requested_kw: float
    price_cap_yuan_per_kwh: Decimal | None = Field(default=None, sa_type=DecimalString)
    status: str = Field(default=EventStatus.RECEIVED.value, max_length=20, index=True)
    received_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Bid(SQLModel, table=True):
    """Our offer for an event: declared capacity and price; the owners' shares in
    :class:`BidOwnerShare` (:mod:`vpp.bids` writes and reads them); how the offer was made (its
    rule, quantile sources, programme version) in ``detail``."""

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="grid_event.id", index=True)
    declared_kw: float
    price_yuan_per_kwh: Decimal = Field(sa_type=DecimalString)
    status: str = Field(default="submitted", max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class BidOwnerShare(SQLModel, table=True):
    """One owner's part of a bid: ``declared_kw`` is what settlement holds the owner to and
    what the planner dispatches its devices for (an owner declaring 0 kW takes no part).
    ``share_fraction``: its part of the bid's declared kW (0..1); ``limited_by``: the offer rule's
    binding limit; ``expected_response_kw`` and ``penalty_probability`` (0..1): the quantile
    rule's figures (None under the no-history rule); ``envelope_kw``: the no-history rule's
    envelope (the smallest kW over the event; None under the quantile rule)."""

    __tablename__ = "bid_owner_share"
    __table_args__ = (UniqueConstraint("bid_id", "owner_id", name="uq_bid_owner_share"),)
    id: int | None = Field(default=None, primary_key=True)
    # None only until stored: vpp.bids.add_bid sets it (the column is NOT NULL)
    bid_id: int | None = Field(default=None, foreign_key="bid.id", index=True, nullable=False)
    owner_id: int = Field(foreign_key="owner.id", index=True)
    declared_kw: float
    share_fraction: float
    limited_by: str = ""
    expected_response_kw: float | None = None
    penalty_probability: float | None = None
    envelope_kw: float | None = None


class DispatchPlan(SQLModel, table=True):
    """A scheduler result: per-device, per-interval powers in ``detail`` and setpoints below."""

    __tablename__ = "dispatch_plan"
    id: int | None = Field(default=None, primary_key=True)
    event_id: int | None = Field(default=None, foreign_key="grid_event.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)
    horizon_start: datetime = Field(sa_type=AwareDateTime)
    interval_minutes: int = 15
    status: str = Field(default="planned", max_length=20)
    objective: float | None = None
    shortfall_kw: float = 0.0
    solve_seconds: float | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Setpoint(SQLModel, table=True):
    """A setpoint for one device and interval, and what happened when it was written."""

    __table_args__ = (
        UniqueConstraint("plan_id", "device_id", "interval_start", name="uq_setpoint_plan_dev_t"),
        Index("ix_setpoint_device_interval", "device_id", "interval_start"),
    )
    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="dispatch_plan.id", index=True)
    device_id: int = Field(foreign_key="device.id")
    interval_start: datetime = Field(sa_type=AwareDateTime)
    setpoint_kw: float
    requested_kw: float | None = None
    written_at: datetime | None = Field(default=None, sa_type=AwareDateTime)
    readback_kw: float | None = None
    status: str = Field(default="pending", max_length=20)


class Settlement(SQLModel, table=True):
    """The settlement of one event (a new ``version`` on re-settlement; history is kept)."""

    __table_args__ = (UniqueConstraint("event_id", "version", name="uq_settlement_event_version"),)
    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="grid_event.id", index=True)
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)
    baseline_kwh: float
    metered_kwh: float
    response_kwh: float
    declared_kw: float
    performance_ratio: float
    revenue_fen: int = Field(sa_type=BigInteger)
    penalty_fen: int = Field(default=0, sa_type=BigInteger)
    fee_fen: int = Field(default=0, sa_type=BigInteger)
    status: str = Field(default="final", max_length=20)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class OwnerPayout(SQLModel, table=True):
    """An owner's share of one settlement."""

    __tablename__ = "owner_payout"
    id: int | None = Field(default=None, primary_key=True)
    settlement_id: int = Field(foreign_key="settlement.id", index=True)
    owner_id: int = Field(foreign_key="owner.id", index=True)
    amount_fen: int = Field(sa_type=BigInteger)
    contribution_kwh: float
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)


class LedgerTransaction(SQLModel, table=True):
    """A balanced set of ledger entries. ``idempotency_key`` makes re-posting a no-op;
    a correction posts a new transaction with ``reverses_id`` set, never an edit."""

    __tablename__ = "ledger_transaction"
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=200, unique=True, index=True)
    event_id: int | None = Field(default=None, foreign_key="grid_event.id", index=True)
    kind: str = Field(max_length=40)
    description: str = Field(default="", max_length=500)
    reverses_id: int | None = Field(default=None, foreign_key="ledger_transaction.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)


class LedgerEntry(SQLModel, table=True):
    """One leg of a transaction: signed integer fen on an account (debit > 0, credit < 0).
    The entries of a transaction sum to zero."""

    __tablename__ = "ledger_entry"
    id: int | None = Field(default=None, primary_key=True)
    transaction_id: int = Field(foreign_key="ledger_transaction.id", index=True)
    account: str = Field(max_length=100, index=True)
    owner_id: int | None = Field(default=None, foreign_key="owner.id", index=True)
    amount_fen: int = Field(sa_type=BigInteger)


class AuditLog(SQLModel, table=True):
    """Append-only record of every setpoint written and every money movement."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=50, index=True)
    subject: str = Field(max_length=200)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


APPEND_ONLY_TABLES = ("audit_log", "ledger_entry", "ledger_transaction")


# -- the fleet revision: every committed fleet change moves it, from any process --------------
#: a device moving between these is the poller's bookkeeping, not a change of the fleet
_LIVE_DEVICE = frozenset({DeviceStatus.ACTIVE.value, DeviceStatus.OFFLINE.value})
#: a gateway moving between these keeps its devices polled (a re-probe of an active gateway)
_LIVE_GATEWAY = frozenset({EnrolmentState.ACTIVE.value, EnrolmentState.OFFLINE.value,
                           EnrolmentState.PROBING.value})
_GATEWAY_BOOKKEEPING = frozenset({"last_probe_at", "last_error"})


def _moved_between(obj: Any, attr: str, live: frozenset[str]) -> bool:
    """True unless ``attr`` changed from one value in ``live`` to another (or did not change)."""
    hist = sa_inspect(obj).attrs[attr].history
    if not hist.has_changes():
        return False
    old = {*hist.deleted, *hist.unchanged}
    return not (old <= live and set(hist.added) <= live)


def is_fleet_change(obj: Any) -> bool:
    """Whether writing ``obj`` (a modified row; new and deleted fleet rows always are)
    changes what the daemon polls."""
    if not isinstance(obj, Gateway | Device | DeviceProfileRow):
        return False
    state = sa_inspect(obj)
    if state.pending or state.deleted or state.was_deleted or isinstance(obj, DeviceProfileRow):
        return True
    changed = {a.key for a in state.attrs if a.history.has_changes()}
    if isinstance(obj, Device):
        # the owner's preferences are read by planning from the row, not by the poller
        return bool(changed - {"status", "status_detail", "preferences"}) or _moved_between(
            obj, "status", _LIVE_DEVICE)
    return bool(changed - _GATEWAY_BOOKKEEPING - {"enrolment_state"}) or _moved_between(
        obj, "enrolment_state", _LIVE_GATEWAY)


@sa_event.listens_for(Session, "before_flush")
def _bump_fleet_revision(session: Session, _ctx: Any, _instances: Any) -> None:
    """Move :class:`FleetRevision` in the same transaction as any fleet change, so a daemon
    sees enrolments, edits and removals made by the CLI or another process (one cheap read of
    one row per poll cycle, whatever the fleet's size)."""
    fleet_rows = Gateway | Device | DeviceProfileRow
    added_or_deleted = any(isinstance(o, fleet_rows) for o in (*session.new, *session.deleted))
    if not added_or_deleted and not any(
            is_fleet_change(o) for o in session.dirty if session.is_modified(o)):
        return
    t = table_of(FleetRevision)
    conn = session.connection()
    done = conn.execute(t.update().where(t.c.id == 1).values(revision=t.c.revision + 1))
    if not done.rowcount:
        conn.execute(t.insert().values(id=1, revision=1))


def fleet_revision(session: Session) -> int:
    """The current fleet revision (0 before the first fleet change)."""
    t = table_of(FleetRevision)
    value = session.connection().execute(sa_select(t.c.revision).where(t.c.id == 1)).scalar()
    return int(value or 0)
