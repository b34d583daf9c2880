"""What ships: build the wheel, install it in a fresh venv, run ``vpp`` from an empty directory.

Marked ``wheel`` (about half a minute with a warm uv cache; the first run downloads the locked
dependencies). The venv gets the dependencies pinned by ``uv.lock`` (``uv export``) and the
wheel; nothing of the checkout is on its path, so the packaged files must come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.wheel, pytest.mark.timeout(600)]


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=480)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} exited {out.returncode}:\n" \
                                f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv's bin directory, with the freshly built wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    uv = _uv()
    _run([*uv, "build", "--wheel", "--out-dir", str(work / "dist"), str(ROOT)], ROOT)
    wheels = list((work / "dist").glob("xiang_vpp-*.whl"))
    assert len(wheels) == 1, wheels
    _run([*uv, "export", "--project", str(ROOT), "--frozen", "--no-dev", "--no-emit-project",
          "--no-hashes", "-q", "-o", str(work / "requirements.txt")], ROOT)
    _run([*uv, "venv", "-q", "-p", f"{sys.version_info.major}.{sys.version_info.minor}",
          str(work / "venv")], work)
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["VIRTUAL_ENV"] = str(work / "venv")
    _run([*uv, "pip", "install", "-q", "-r", str(work / "requirements.txt"), str(wheels[0])],
         work, env)
    return work / "venv" / "bin"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("VPP_") and k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["COLUMNS"] = "200"
    return env


def test_config_check_and_a_short_demo_run_from_an_empty_directory(
        installed: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run([str(installed / "python"), "-c",
                  "import vpp.packaged as p; print(p.DEFAULT_CONFIG)"], empty, _env())
    # read from the installed wheel, not from the checkout
    assert "site-packages/vpp/_config/default.toml" in where and str(ROOT) not in where
    out = _run([str(installed / "vpp"), "config", "check"], empty, _env())
    assert out.startswith("ok:") and "timezone Asia/Shanghai, interval 15 min" in out
    out = _run([str(installed / "vpp"), "demo", "--no-simulate"], empty, _env())
    assert "Zhuzhou demo fleet" in out and "industrial_load" in out
    assert (empty / "data" / "demo.sqlite3").is_file()
    # the programme, a device profile and a scenario come from the wheel too
    out = _run([str(installed / "python"), "-c", (
        "from datetime import date; from vpp.config import load_settings; "
        "from bidding.programme import load_programme; "
        "from device_adapters.profile import load_profile; "
        "from sim.scenarios.scenario import load_scenario; s = load_settings(); "
        "p = load_programme(s.bidding.programme, s.bidding.programmes_dir, date(2026, 7, 1)); "
        "print(p.name, load_profile('keba-p30').kind.value, "
        "load_scenario('zhuzhou-2025').scenario.programme)")], empty, _env())
    assert out.split() == ["hunan-2026", "ev_charger", "hunan-2026"]
