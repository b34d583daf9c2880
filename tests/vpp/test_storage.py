"""Storage on both SQLite and PostgreSQL: migrations, fleet registry, telemetry, append-only logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlmodel import select

from vpp import fleet
from vpp.config import GatewaySpec
from vpp.db import current_revision, head_revision, session_scope, upgrade
from vpp.errors import ConflictError, StorageError, ValidationError
from vpp.models import ApiToken, AuditLog, Device, GridEvent, LedgerEntry, LedgerTransaction, Owner
from vpp.security import hash_token, token_matches
from vpp.telemetry_store import Reading, TelemetryBuffer, read_device

SH = ZoneInfo("Asia/Shanghai")


def gateway(port: int = 1502, units: tuple[int, ...] = (1, 2)) -> dict:
    return {
        "host": "127.0.0.1",
        "port": port,
        "devices": [
            {"name": f"b{u}", "kind": "battery", "unit_id": u, "profile": "huawei-luna2000",
             "rated_power_kw": 5, "min_setpoint_kw": -5, "max_setpoint_kw": 5,
             "params": {"capacity_kwh": 10}}
            for u in units
        ],
    }


def test_migrate_empty_then_noop(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None
    before, after = upgrade(empty_engine)
    assert (before, after) == (None, head_revision())
    assert upgrade(empty_engine) == (head_revision(), head_revision())


def test_newer_schema_is_refused_and_left_alone(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(StorageError, match="revision '9999_future', which this version does not know"):
        upgrade(engine)
    assert current_revision(engine) == "9999_future"


def test_unreachable_database_is_one_line_error() -> None:
    from vpp.db import check_connection, make_engine

    bad = make_engine("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StorageError, match=r"^cannot reach database postgresql\+psycopg://nobody@127.0.0.1:1/none: ") as err:
        check_connection(bad)
    assert "\n" not in str(err.value)


def test_fleet_registry_and_conflicts(engine: Engine) -> None:
    with session_scope(engine) as s:
        owner = fleet.add_owner(s, "Tianyuan Storage")
        enrolled = fleet.add_gateway(s, owner, "park", gateway())
        assert [d.unit_id for d in enrolled.devices] == [1, 2]
    with pytest.raises(ConflictError, match="owner 'Tianyuan Storage' already exists"):
        with session_scope(engine) as s:
            fleet.add_owner(s, "Tianyuan Storage")
    # another owner's gateway at the same endpoint (the same owner's unprobed one is replaced)
    with pytest.raises(ConflictError, match="gateway 127.0.0.1:1502 is already registered"):
        with session_scope(engine) as s:
            fleet.add_gateway(s, fleet.add_owner(s, "Other"), "park", gateway())
    with pytest.raises(ValidationError, match="duplicate unit id 3 on gateway 127.0.0.1:1600"):
        with session_scope(engine) as s:
            fleet.add_gateway(s, fleet.get_owner(s, "Tianyuan Storage"), "park2",
                              gateway(1600, (3, 3)))
    # nothing half-written by the failed calls
    with session_scope(engine) as s:
        assert len(s.exec(select(Device)).all()) == 2
        assert len(s.exec(select(Owner)).all()) == 1
        rows = fleet.list_devices(s)
        assert [r.gateway for r in rows] == ["127.0.0.1:1502"] * 2
        assert rows[0].device.params == {"capacity_kwh": 10}


def test_unique_unit_per_gateway_enforced_by_database(engine: Engine) -> None:
    with session_scope(engine) as s:
        owner = fleet.add_owner(s, "o")
        gw = fleet.add_gateway(s, owner, "site", gateway(units=(1,)))
        dup = gw.devices[0].model_copy(update={"id": None, "name": "again"})
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            s.add(Device.model_validate(dup.model_dump()))


def test_tokens_are_stored_hashed(engine: Engine) -> None:
    with session_scope(engine) as s:
        owner = fleet.add_owner(s, "o")
        row, clear = fleet.issue_token(s, "owner", owner, "app")
    with session_scope(engine) as s:
        stored = s.exec(select(ApiToken)).one()
        assert stored.token_hash == hash_token(clear) != clear
        assert token_matches(clear, stored.token_hash)
        assert not token_matches(clear + "x", stored.token_hash)
        assert clear not in str(s.exec(select(AuditLog)).all())
    with pytest.raises(ValidationError, match="unknown role 'admin'"):
        with session_scope(engine) as s:
            fleet.issue_token(s, "admin")


def test_telemetry_batched_and_read_back_per_day(engine: Engine) -> None:
    with session_scope(engine) as s:
        owner = fleet.add_owner(s, "o")
        dev_a, dev_b = fleet.add_gateway(s, owner, "site", gateway()).devices
    assert dev_a.id is not None and dev_b.id is not None
    day = datetime(2025, 7, 25, tzinfo=SH)
    buf = TelemetryBuffer(engine, batch_size=100)
    for i in range(96 * 2):
        ts = day + timedelta(minutes=15 * i)
        buf.add(Reading(dev_a.id, ts, power_kw=float(i), soc_pct=50.0))
        full = buf.add(Reading(dev_b.id, ts, power_kw=-float(i)))
        if full:
            buf.flush()
    buf.flush()
    assert buf.written == 96 * 4 and len(buf) == 0
    frame = read_device(engine, dev_a.id, day, day + timedelta(days=1))
    assert len(frame) == 96
    assert frame["power_kw"].tolist() == [float(i) for i in range(96)]
    assert frame.index[0] == day.astimezone(UTC)
    assert str(frame.index.tz) == "UTC"


def test_per_device_day_query_uses_index(engine: Engine) -> None:
    q = (
        "SELECT ts, power_kw FROM telemetry WHERE device_id = 1 "
        "AND ts >= '2025-07-25' AND ts < '2025-07-26'"
    )
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = " ".join(str(r) for r in conn.execute(text("EXPLAIN QUERY PLAN " + q)))
        else:
            conn.execute(text("SET enable_seqscan = off"))
            plan = " ".join(str(r) for r in conn.execute(text("EXPLAIN " + q)))
    assert "ix_telemetry_device_ts" in plan, plan


def test_buffer_keeps_readings_when_database_fails(engine: Engine) -> None:
    with session_scope(engine) as s:
        dev = fleet.add_gateway(s, fleet.add_owner(s, "o"), "site", gateway(units=(1,))).devices[0]
    assert dev.id is not None
    buf = TelemetryBuffer(engine, batch_size=10)
    buf.add(Reading(dev.id, datetime(2025, 1, 1, tzinfo=SH), power_kw=1.0))
    buf.add(Reading(999_999, datetime(2025, 1, 1, tzinfo=SH), power_kw=1.0))  # FK violation
    with pytest.raises(IntegrityError):
        buf.flush()
    assert len(buf) == 2  # nothing lost, ready to retry


def test_timestamps_are_aware_and_naive_refused(engine: Engine) -> None:
    start = datetime(2025, 7, 25, 19, 0, tzinfo=SH)
    with session_scope(engine) as s:
        s.add(GridEvent(external_id="e1", source="cli", event_type="day_ahead",
                        programme="hunan-2026", start=start, end=start + timedelta(hours=2),
                        requested_kw=1000, price_cap_yuan_per_kwh=Decimal("3.5")))
    with session_scope(engine) as s:
        ev = s.exec(select(GridEvent)).one()
        assert ev.start == start and ev.start.tzinfo is not None
        assert ev.price_cap_yuan_per_kwh == Decimal("3.5")
    with pytest.raises(StatementError, match="refusing naive timestamp"):
        with session_scope(engine) as s:
            s.add(GridEvent(external_id="e2", source="cli", event_type="day_ahead",
                            programme="x", start=datetime(2025, 7, 25, 19),
                            end=datetime(2025, 7, 25, 21), requested_kw=1))


@pytest.mark.parametrize("table", ["audit_log", "ledger_entry", "ledger_transaction"])
def test_append_only_tables_refuse_update_and_delete(engine: Engine, table: str) -> None:
    with session_scope(engine) as s:
        s.add(AuditLog(actor="t", action="setpoint_written", subject="device:1"))
        tx = LedgerTransaction(idempotency_key="k1", kind="settlement")
        s.add(tx)
        s.flush()
        assert tx.id is not None
        s.add(LedgerEntry(transaction_id=tx.id, account="grid_receivable", amount_fen=100))
        s.add(LedgerEntry(transaction_id=tx.id, account="revenue", amount_fen=-100))
    for stmt in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}"):
        with pytest.raises((IntegrityError, DBAPIError), match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(stmt))
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() >= 1


def test_load_fleet_is_idempotent(engine: Engine) -> None:
    from vpp.config import OwnerSpec

    owners = [OwnerSpec.model_validate(
        {"name": "o", "sites": [{"name": "s", "gateways": [GatewaySpec.model_validate(gateway()).model_dump()]}]}
    )]
    with session_scope(engine) as s:
        assert fleet.load_fleet(s, owners) == 2
    with session_scope(engine) as s:
        assert fleet.load_fleet(s, owners) == 0
        assert len(s.exec(select(Device)).all()) == 2


def test_the_schema_head_constant_is_alembics_head() -> None:
    """`vpp.db.SCHEMA_HEAD` (read by every CLI command without importing Alembic) is the newest
    migration: a new migration fails here until the constant names it."""
    from alembic.script import ScriptDirectory

    from vpp.db import MIGRATIONS_DIR, SCHEMA_HEAD

    assert ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head() == SCHEMA_HEAD
