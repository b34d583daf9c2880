"""The fleet the daemon runs is the fleet in the database (issue 23): gateways and devices
enrolled, edited, retired or removed by another process (a separate engine, the CLI in a
subprocess) reach the running daemon within one poll period. Real daemon, simulated Modbus
gateways on 127.0.0.1, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import col, select

from tests.conftest import REPO_ROOT
from tests.vpp.daemon.harness import (
    daemon_settings,
    gateway_spec,
    port,
    seed,
    start_gateway,
    wait_for,
)
from vpp import fleet, fleet_edit
from vpp.config import EnrolmentSettings, PollingSettings
from vpp.db import make_engine, session_scope
from vpp.enrolment import probe_gateway
from vpp.errors import ConflictError
from vpp.models import AuditLog, Device
from vpp.server import Daemon

#: the poll period of daemon_settings, and what a loaded test machine may add to it
POLL_S = 0.3
SLACK_S = 2.0


def other_process_engine(engine: Engine) -> Engine:
    """A second engine on the same database, as another process would have."""
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar()
        return make_engine(url, search_path=str(schema))
    return make_engine(url)


async def seconds_until(check, what: str) -> float:  # noqa: ANN001
    t0 = time.monotonic()
    await wait_for(check, timeout_s=20.0, what=what, every_s=0.02)
    return time.monotonic() - t0


async def test_another_process_enrols_edits_retires(engine: Engine, tmp_path: Path) -> None:
    tokens = seed(engine)
    spec = gateway_spec(port())
    gw = await start_gateway(spec)
    daemon = Daemon(daemon_settings(tmp_path, str(engine.url)), engine, port=0)
    await daemon.start()
    rt = daemon.parts.fleet
    assert rt is not None
    other = other_process_engine(engine)
    try:
        await asyncio.sleep(3 * POLL_S)  # the daemon runs with an empty fleet
        with session_scope(other) as s:
            gid = fleet.add_gateway(s, fleet.get_owner(s, tokens.owner_id), "mall",
                                    spec).gateway.id
        await probe_gateway(other, int(gid or 0), PollingSettings(probe_timeout_s=1.0))
        with session_scope(other) as s:
            ids = [int(d.id or 0) for d in s.exec(select(Device).order_by(col(Device.unit_id)))]
        # enrolled elsewhere: polled within one poll period (+ slack)
        took = await seconds_until(
            lambda: _async(all(rt.latest(i) is not None for i in ids)), "the new devices polled")
        assert took <= POLL_S + SLACK_S, took

        # an edit of the limits rebuilds the adapter with them; a held setpoint inside the
        # new limits is kept (not written again), one outside them is released
        result = await rt.apply(ids[0], -2.0)
        assert result.error is None and gw.devices[1].setpoint_kw == pytest.approx(-2.0, abs=0.01)
        with session_scope(other) as s:
            fleet_edit.edit_device(s, fleet_edit.get_device(s, ids[0]),
                                   fleet_edit.DeviceEdit(max_setpoint_kw=3.0), "test")
        took = await seconds_until(
            lambda: _async(rt.has_adapter(ids[0])
                           and rt.poller.adapter(ids[0]).max_setpoint_kw == 3.0),
            "the edited limits in the daemon")
        assert took <= POLL_S + SLACK_S, took
        assert rt.last_setpoint(ids[0]) == -2.0
        assert rt.poller.adapter(ids[0]).active_setpoint_kw == -2.0
        assert gw.devices[1].setpoint_kw == pytest.approx(-2.0, abs=0.01)
        with session_scope(other) as s:
            fleet_edit.edit_device(s, fleet_edit.get_device(s, ids[0]),
                                   fleet_edit.DeviceEdit(min_setpoint_kw=-1.0), "test")
        await seconds_until(
            lambda: _async(rt.has_adapter(ids[0])
                           and rt.poller.adapter(ids[0]).min_setpoint_kw == -1.0),
            "the narrower limits in the daemon")
        assert rt.last_setpoint(ids[0]) is None  # released: outside the new limits
        assert gw.devices[1].setpoint_kw is None or gw.devices[1].setpoint_kw >= -1.0

        # retired elsewhere: no longer polled; the other device still is
        with session_scope(other) as s:
            fleet_edit.retire_device(s, fleet_edit.get_device(s, ids[1]), "test")
        took = await seconds_until(lambda: _async(not rt.has_adapter(ids[1])),
                                   "the retired device dropped")
        assert took <= POLL_S + SLACK_S, took
        assert rt.has_adapter(ids[0])
        await asyncio.sleep(3 * POLL_S)
        with session_scope(engine) as s:  # the poller did not bring it back to active
            assert s.get(Device, ids[1]).status == "retired"  # type: ignore[union-attr]

        # with history it cannot be deleted, only retired; the whole gateway goes
        with pytest.raises(ConflictError, match="has history .*telemetry.*retire it"):
            with session_scope(other) as s:
                fleet_edit.remove_gateway(s, fleet_edit.get_gateway(s, int(gid or 0)), "test")
        with session_scope(other) as s:
            fleet_edit.retire_gateway(s, fleet_edit.get_gateway(s, int(gid or 0)), "test")
        await seconds_until(lambda: _async(not rt.has_adapter(ids[0])), "the gateway dropped")
        assert not rt.poller.gateways  # its connection closed
        with session_scope(engine) as s:
            actions = {a.action for a in s.exec(select(AuditLog))}
        assert {"device_edited", "device_retired", "gateway_retired"} <= actions
    finally:
        await daemon.stop()
        await gw.stop()
        other.dispose()


async def _async(value: object) -> object:
    return value


async def _cli(db_url: str, *args: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPP_")}
    env.update(PYTHONPATH=str(REPO_ROOT), VPP_DATABASE_URL=db_url,
               VPP_ENROLMENT__ALLOW_LOOPBACK="true")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vpp.cli.main", *args, cwd=str(REPO_ROOT), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def test_cli_enrolment_reaches_a_running_daemon(sqlite_engine: Engine,
                                                      tmp_path: Path) -> None:
    """`vpp gateway add --probe` in another process while the daemon runs (the issue's case:
    never polled until a restart before)."""
    seed(sqlite_engine)
    spec = gateway_spec(port())
    gw = await start_gateway(spec)
    daemon = Daemon(daemon_settings(tmp_path, str(sqlite_engine.url)), sqlite_engine, port=0)
    await daemon.start()
    rt = daemon.parts.fleet
    assert rt is not None
    try:
        proc = await _cli(
            str(sqlite_engine.url), "gateway", "add", "--owner", "Shennong City Mall",
            "--site", "mall", "--host", "127.0.0.1", "--port", str(spec["port"]),
            "--unit-ids", "1-2", "--kind", "battery", "--profile", "huawei-luna2000",
            "--rated-kw", "5", "--param", "capacity_kwh=15", "--probe")
        out, err = await proc.communicate()
        assert proc.returncode == 0, (out, err)
        with session_scope(sqlite_engine) as s:
            ids = [int(d.id or 0) for d in s.exec(select(Device))]
        assert len(ids) == 2
        took = await seconds_until(
            lambda: _async(all(rt.latest(i) is not None for i in ids)), "CLI devices polled")
        assert took <= POLL_S + SLACK_S, took
    finally:
        await daemon.stop()
        await gw.stop()


async def test_the_daemon_does_not_connect_to_a_host_the_policy_refuses(
        engine: Engine, tmp_path: Path) -> None:
    """Checked again before connecting: a gateway already in the database (enrolled under
    another policy, or a name that now resolves elsewhere) is not polled, with the reason;
    a re-probe through the API fails with it too."""
    tokens = seed(engine)
    spec = gateway_spec(port())
    gw = await start_gateway(spec)
    with session_scope(engine) as s:
        enrolled = fleet.add_gateway(s, fleet.get_owner(s, tokens.owner_id), "mall", spec)
        enrolled.gateway.enrolment_state = "active"
        for d in enrolled.devices:
            d.status = "active"
        ids = [int(d.id or 0) for d in enrolled.devices]
    settings = daemon_settings(tmp_path, str(engine.url))
    settings.enrolment = EnrolmentSettings()  # the shipped default: no loopback
    daemon = Daemon(settings, engine, port=0)
    await daemon.start()
    rt = daemon.parts.fleet
    try:
        await asyncio.sleep(5 * POLL_S)
        assert not any(rt.has_adapter(i) for i in ids)
        assert "loopback address" in rt.poller.load_errors[ids[0]]
        assert gw.requests == 0  # never connected to
        daemon.parts.enrolment.start(int(enrolled.gateway.id or 0))
        await wait_for(lambda: _async(
            (p := daemon.parts.enrolment.progress(enrolled.gateway.id)) is not None
            and p.state == "failed"), what="the re-probe refused")
        assert gw.requests == 0
    finally:
        await daemon.stop()
        await gw.stop()


async def test_the_poll_step_goes_on_when_the_revision_cannot_be_read(tmp_path: Path) -> None:
    """Database down: the revision check logs and the fleet in hand is polled (the poll step
    must not fail, or polling would stop with the database)."""
    from vpp.daemon.dbexec import Db
    from vpp.daemon.fleet_runtime import FleetRuntime
    from vpp.daemon.infra import Infra

    down = make_engine("postgresql://nobody@127.0.0.1:1/none")
    infra = Infra.create(daemon_settings(tmp_path, "sqlite://"), Db(down))
    rt = FleetRuntime(infra)
    rt._need_refresh, rt._revision = False, 7  # loaded once, before the outage
    try:
        assert await rt.fleet_changed() is False
        await rt.poll_step()
    finally:
        infra.db.close()
        down.dispose()
