"""Migration 0005 (OCPP gateways) on SQLite and PostgreSQL: existing gateways become Modbus
gateways; an OCPP gateway is stored with its identity at port 0; downgrade refuses while an OCPP
gateway exists and drops the columns once none does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine

from vpp.db import _alembic_config, current_revision, upgrade


def _seed(engine: Engine) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO owner (id, name, contact, created_at) "
                             "VALUES (1, 'o', '', :t)"), {"t": now})
        conn.execute(sa.text("INSERT INTO site (id, owner_id, name, region, created_at) "
                             "VALUES (1, 1, 's', '', :t)"), {"t": now})
        conn.execute(sa.text("INSERT INTO gateway (id, site_id, owner_id, host, port, "
                             "enrolment_state, created_at) VALUES (1, 1, 1, '10.0.0.5', 502, "
                             "'active', :t)"), {"t": now})


def test_existing_gateways_are_modbus_and_ocpp_rows_round_trip(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0004")
    _seed(empty_engine)
    upgrade(empty_engine, "0005")
    assert current_revision(empty_engine) == "0005"
    with empty_engine.begin() as conn:
        row = conn.execute(sa.text("SELECT protocol, ocpp_password_hash FROM gateway")).one()
        assert tuple(row) == ("modbus", None)
        conn.execute(sa.text(
            "INSERT INTO gateway (id, site_id, owner_id, host, port, protocol, "
            "ocpp_password_hash, enrolment_state, created_at) VALUES (2, 1, 1, 'CP-1', 0, "
            "'ocpp', 'pbkdf2_sha256$1$aa$bb', 'registered', :t)"),
            {"t": datetime.now(UTC).replace(tzinfo=None)})
    # the endpoint uniqueness holds for identities too
    with pytest.raises(sa.exc.IntegrityError), empty_engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO gateway (id, site_id, owner_id, host, port, protocol, "
            "enrolment_state, created_at) VALUES (3, 1, 1, 'CP-1', 0, 'ocpp', 'registered', "
            ":t)"), {"t": datetime.now(UTC).replace(tzinfo=None)})
    with pytest.raises(RuntimeError, match="OCPP gateway"):
        command.downgrade(_alembic_config(empty_engine), "0004")
    with empty_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM gateway WHERE protocol = 'ocpp'"))
    command.downgrade(_alembic_config(empty_engine), "0004")
    cols = {c["name"] for c in sa.inspect(empty_engine).get_columns("gateway")}
    assert "protocol" not in cols and "ocpp_password_hash" not in cols
