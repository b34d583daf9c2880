"""`vpp gateway|device edit|retire|remove` and a failed `vpp gateway add --probe` (issue 23),
in process on a real SQLite file, with a simulated gateway on 127.0.0.1 where one is needed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from tests.conftest import run_cli as run
from tests.vpp.daemon.harness import gateway_spec, port, start_gateway
from vpp.db import make_engine, session_scope
from vpp.models import AuditLog, Device, Gateway, TelemetryReading

BATTERY = ["--kind", "battery", "--profile", "huawei-luna2000", "--rated-kw", "5",
           "--param", "capacity_kwh=15"]


@pytest.fixture
def env(cli_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated CLI database with one owner; loopback allowed as the README says."""
    monkeypatch.setenv("VPP_ENROLMENT__ALLOW_LOOPBACK", "true")
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "owner", "add", "mall")[0] == 0
    return cli_env


@pytest.fixture
def sim_gateway() -> Iterator[dict[str, Any]]:
    """Two simulated batteries (units 1, 2) on 127.0.0.1, served from a thread's own loop."""
    spec = gateway_spec(port())
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        holder["gw"] = loop.run_until_complete(start_gateway(spec))
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(10)
    yield spec
    asyncio.run_coroutine_threadsafe(holder["gw"].stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    t.join(10)
    loop.close()


def rows(db: Path) -> tuple[list[Gateway], list[Device], list[str]]:
    engine = make_engine(f"sqlite:///{db}")
    with session_scope(engine) as s:
        out = (list(s.exec(select(Gateway))), list(s.exec(select(Device))),
               [a.action for a in s.exec(select(AuditLog).order_by(col(AuditLog.id)))])
    engine.dispose()
    return out


def add(capsys: pytest.CaptureFixture[str], port_: int, units: str, *extra: str
        ) -> tuple[int, str, str]:
    return run(capsys, "gateway", "add", "--owner", "mall", "--site", "roof", "--host",
               "127.0.0.1", "--port", str(port_), "--unit-ids", units, *BATTERY, *extra)


def test_a_failed_probe_leaves_nothing_and_the_corrected_command_succeeds(
    env: Path, capsys: pytest.CaptureFixture[str], sim_gateway: dict[str, Any]
) -> None:
    gport = sim_gateway["port"]
    # wrong port: nothing listens there
    code, _, err = add(capsys, port(), "1-2", "--probe")
    assert code == 1 and "unreachable host" in err and "nothing was registered" in err
    assert rows(env)[:2] == ([], [])
    # right port, wrong unit ids: refused by the probe, taken back as well
    code, _, err = add(capsys, gport, "7-8", "--probe")
    assert code == 1 and "wrong unit id" in err and "nothing was registered" in err
    assert rows(env)[:2] == ([], [])
    # the corrected command succeeds (before: "already registered")
    code, out, err = add(capsys, gport, "1-2", "--probe")
    assert code == 0, err
    gws, devs, actions = rows(env)
    assert [g.enrolment_state for g in gws] == ["active"]
    assert {d.status for d in devs} == {"active"}
    assert actions.count("gateway_removed") == 2  # each take-back is audited


def test_an_unprobed_registration_is_replaced_by_the_corrected_one(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(capsys, 15999, "1")[0] == 0
    assert add(capsys, 15999, "1-2")[0] == 0  # same owner, never probed: replaced
    gws, devs, actions = rows(env)
    assert len(gws) == 1 and len(devs) == 2 and "gateway_replaced" in actions


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "ev_charger", "--profile", "huawei-luna2000", "--rated-kw", "22",
          "--param", "max_charge_kw_per_connector=22"],
         "profile 'huawei-luna2000' is for a battery, not a ev_charger"),
        (["--kind", "battery", "--profile", "no-such-profile", "--rated-kw", "5",
          "--param", "capacity_kwh=15"], "unknown device profile 'no-such-profile'"),
    ],
)
def test_a_wrong_profile_is_refused_without_probe(
    env: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run(capsys, "gateway", "add", "--owner", "mall", "--site", "s", "--host",
                       "127.0.0.1", "--port", "15021", "--unit-ids", "1", *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert rows(env)[:2] == ([], [])


def test_edit_retire_remove(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "gateway", "add", "--owner", "mall", "--site", "roof", "--host",
                       "10.0.0.5", "--unit-ids", "1-2", *BATTERY)
    assert code == 0, err
    gws, devs, _ = rows(env)
    gid, d1, d2 = gws[0].id, devs[0].id, devs[1].id
    assert d2 is not None
    # device edits are validated like enrolment
    code, out, err = run(capsys, "device", "edit", str(d1), "--max-kw", "3", "--min-kw", "-3")
    assert code == 0 and "max_setpoint_kw: 5.0 -> 3.0" in out, err
    code, _, err = run(capsys, "device", "edit", str(d1), "--max-kw", "9")
    assert code == 2 and f"device {d1}: limits [-3.0, 9.0] kW exceed rated_power_kw=5.0" in err
    code, _, err = run(capsys, "device", "edit", str(d1), "--profile", "keba-p30")
    assert code == 2 and "profile 'keba-p30' is for a ev_charger, not a battery" in err
    code, _, err = run(capsys, "device", "edit", str(d1), "--unit-id", "2")
    assert code == 1 and "unit id 2 is already enrolled" in err
    # gateway edits pass the host policy
    code, _, err = run(capsys, "gateway", "edit", str(gid), "--host", "169.254.169.254")
    assert code == 2 and "link-local" in err
    code, _, err = run(capsys, "gateway", "edit", str(gid), "--host", "8.8.8.8")
    assert code == 2 and "not in the allowed networks" in err
    code, out, err = run(capsys, "gateway", "edit", str(gid), "--host", "10.0.0.6",
                         "--port", "1502")
    assert code == 0 and "10.0.0.6:1502" in out, err
    # history is kept: a device with telemetry is retired, not deleted
    engine = make_engine(f"sqlite:///{env}")
    with session_scope(engine) as s:
        s.add(TelemetryReading(device_id=d2, ts=datetime.now(UTC), power_kw=1.0))
    engine.dispose()
    code, _, err = run(capsys, "device", "remove", str(d2))
    assert code == 1 and f"device {d2} has history (telemetry)" in err and "retire" in err
    assert run(capsys, "device", "retire", str(d2))[0] == 0
    assert run(capsys, "device", "remove", str(d1))[0] == 0  # no history: deleted
    code, _, err = run(capsys, "gateway", "remove", str(gid))
    assert code == 1 and "has history" in err
    assert run(capsys, "gateway", "retire", str(gid))[0] == 0
    gws, devs, actions = rows(env)
    assert [g.enrolment_state for g in gws] == ["retired"]
    assert [(d.id, d.status) for d in devs] == [(d2, "retired")]
    for a in ("device_edited", "gateway_edited", "device_retired", "device_removed",
              "gateway_retired"):
        assert a in actions
    assert run(capsys, "gateway", "remove", "999")[0] == 1  # "no gateway 999"


def test_poll_does_not_connect_to_a_refused_host(
    env: Path, capsys: pytest.CaptureFixture[str], sim_gateway: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`vpp poll` checks the host policy before it connects, like the daemon."""
    assert add(capsys, sim_gateway["port"], "1-2", "--probe")[0] == 0
    code, out, _ = run(capsys, "poll", "--once")
    assert code == 0 and "polling 2 device(s)" in out and ", 0 failed" in out
    monkeypatch.delenv("VPP_ENROLMENT__ALLOW_LOOPBACK")  # the shipped default
    code, out, _ = run(capsys, "poll", "--once")
    assert code == 0 and "polling 0 device(s)" in out
    assert "not polled: gateway host '127.0.0.1' refused: 127.0.0.1 is a loopback" in out
