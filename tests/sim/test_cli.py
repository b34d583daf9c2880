"""`vpp sim gateways` / `vpp sim demo` serve real Modbus TCP in a separate process;
`vpp gateway add --probe`, `vpp gateway probe` and `vpp poll --once` enrol and read them."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import free_port
from vpp.cli.main import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo_root: Path) -> Path:
    monkeypatch.chdir(repo_root)
    for k in list(os.environ):
        if k.startswith("VPP_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("VPP_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    monkeypatch.setenv("VPP_POLLING__TIMEOUT_S", "5")  # a loaded CI machine is slow
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _wait_port(port: int, proc: subprocess.Popen[str] | None, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"simulator exited: {proc.stdout.read() if proc.stdout else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"port {port} never opened")


@contextmanager
def simulator(*args: str, port: int, cwd: Path,
              before_wait: Callable[[], object] | None = None) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "vpp.cli.main", *args], cwd=cwd,
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={k: v for k, v in os.environ.items()
                                 if not k.startswith("VPP_")})
    try:
        if before_wait is not None:
            before_wait()  # overlaps with the simulator's start-up
        _wait_port(port, proc)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


def test_sim_gateways_then_enrol_with_probe(
    env: Path, capsys: pytest.CaptureFixture[str], repo_root: Path
) -> None:
    port = free_port()
    with simulator("sim", "gateways", "--devices", "3", "--per-gateway", "3", "--base-port",
                   str(port), "--seconds", "120", port=port, cwd=repo_root,
                   before_wait=lambda: (run(capsys, "db", "upgrade"),
                                        run(capsys, "owner", "add", "Sim Owner"))):
        code, out, err = run(
            capsys, "gateway", "add", "--owner", "Sim Owner", "--site", "sim", "--host",
            "127.0.0.1", "--port", str(port), "--unit-ids", "1-3", "--kind", "battery",
            "--profile", "huawei-luna2000", "--rated-kw", "5", "--param", "capacity_kwh=15",
            "--probe")
        assert code == 0, err
        assert "gateway 1: active" in out and out.count("active") >= 4
        code, out, err = run(capsys, "poll", "--once")
        assert code == 0, err
        assert "polling 3 device(s)" in out and "3 failed" not in out
        # wrong unit ids: registered, probe says exactly why
        code, out, err = run(
            capsys, "gateway", "add", "--owner", "Sim Owner", "--site", "sim2", "--host",
            "127.0.0.1", "--port", str(port + 5000), "--unit-ids", "1", "--kind", "battery",
            "--profile", "huawei-luna2000", "--rated-kw", "5", "--param", "capacity_kwh=15",
            "--probe")
        assert code == 1 and "unreachable host" in err
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
    from vpp.config import load_settings
    from vpp.db import make_engine, session_scope
    from vpp.fleet import load_fleet

    engine = make_engine(os.environ["VPP_DATABASE_URL"])
    with session_scope(engine) as s:
        assert load_fleet(s, load_settings(cfg).owners) == 9
    engine.dispose()
    # served in-process from a thread this time (the subprocess path is covered above)
    server = threading.Thread(target=main, args=(["--config", str(cfg), "sim", "demo",
                                                  "--seconds", "30"],), daemon=True)
    server.start()
    for port in ports.values():
        _wait_port(port, None)
    for gid in range(1, 5):
        code, out, err = run(capsys, "--config", str(cfg), "gateway", "probe", str(gid))
        assert code == 0, err + out
    code, out, _ = run(capsys, "--config", str(cfg), "device", "list")
    assert out.count("active") == 9


def test_sim_cli_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "sim", "gateways", "--devices", "0")[0] == 2
    code, _, err = run(capsys, "sim", "gateways", "--devices", "10", "--per-gateway", "300")
    assert code == 2
