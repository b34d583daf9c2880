"""`vpp sim gateways` / `vpp sim demo` serve real Modbus TCP (in a thread here);
`vpp gateway add --probe`, `vpp gateway probe` and `vpp poll --once` enrol and read them."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.conftest import run_cli as run
from vpp.cli.main import main


@pytest.fixture
def env(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VPP_POLLING__TIMEOUT_S", "5")  # a loaded CI machine is slow
    # the simulated gateways are on 127.0.0.1: what the README (and `vpp sim gateways`) says to set
    monkeypatch.setenv("VPP_ENROLMENT__ALLOW_LOOPBACK", "true")
    return cli_env.parent


def _wait_port(port: int, thread: threading.Thread, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise AssertionError("the simulator stopped early")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"port {port} never opened")


def serve_in_thread(*args: str) -> threading.Thread:
    """Run `vpp ARGS` (a `sim` command with --seconds) in a thread; it serves real Modbus TCP
    on 127.0.0.1 while the test drives the other commands in the main thread."""
    t = threading.Thread(target=main, args=(list(args),), daemon=True)
    t.start()
    return t


def test_sim_gateways_then_enrol_with_probe(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    server = serve_in_thread("sim", "gateways", "--devices", "3", "--per-gateway", "3",
                             "--base-port", str(port), "--seconds", "8")
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "owner", "add", "Sim Owner")[0] == 0
    _wait_port(port, server)
    code, out, err = run(
        capsys, "gateway", "add", "--owner", "Sim Owner", "--site", "sim", "--host",
        "127.0.0.1", "--port", str(port), "--unit-ids", "1-3", "--kind", "battery",
        "--profile", "huawei-luna2000", "--rated-kw", "5", "--param", "capacity_kwh=15",
        "--probe")
    assert code == 0, err
    assert "gateway 1: active" in out and out.count("active") >= 4
    code, out, err = run(capsys, "poll", "--once")
    assert code == 0, err
    assert "polling 3 device(s)" in out and ", 0 failed" in out
    code, out, err = run(
        capsys, "gateway", "add", "--owner", "Sim Owner", "--site", "sim2", "--host",
        "127.0.0.1", "--port", str(free_port()), "--unit-ids", "1", "--kind", "battery",
        "--profile", "huawei-luna2000", "--rated-kw", "5", "--param", "capacity_kwh=15",
        "--probe")
    assert code == 1 and "unreachable host" in err
    server.join(30)
    assert not server.is_alive()
    code, out, err = run(capsys, "gateway", "probe", "1")  # the simulator has stopped
    assert code == 1 and "not enrolled" in err and "unreachable host" in err
    code, out, _ = run(capsys, "gateway", "probe", "99")
    assert code == 1


def test_sim_demo_serves_the_fleet_file(
    env: Path, capsys: pytest.CaptureFixture[str], repo_root: Path
) -> None:
    text = (repo_root / "config" / "zhuzhou-demo.toml").read_text()
    ports = {p: free_port() for p in ("15021", "15022", "15023", "15024")}
    for old, new in ports.items():
        text = re.sub(rf"port = {old}\b", f"port = {new}", text)
    cfg = env / "demo.toml"
    cfg.write_text(text)
    assert run(capsys, "--config", str(cfg), "db", "upgrade")[0] == 0
    code, out, err = run(capsys, "--config", str(cfg), "gateway", "import-fleet")
    assert code == 0 and "9 device(s) registered" in out, err
    server = serve_in_thread("--config", str(cfg), "sim", "demo", "--seconds", "6")
    for port in ports.values():
        _wait_port(port, server)
    code, out, err = run(capsys, "--config", str(cfg), "gateway", "probe", "--all")
    assert code == 0, err + out
    assert out.count("gateway ") >= 4 and "failed" not in out
    code, out, _ = run(capsys, "--config", str(cfg), "device", "list")
    assert out.count("active") == 9
    server.join(30)


def test_sim_cli_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "sim", "gateways", "--devices", "0")[0] == 2
    code, _, err = run(capsys, "sim", "gateways", "--devices", "10", "--per-gateway", "300")
    assert code == 2
