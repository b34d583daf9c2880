"""The ``vpp`` command end to end on a real SQLite file (and PostgreSQL for the URL override)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import run_cli as run
from vpp.db import make_engine


@pytest.fixture
def env(cli_env: Path) -> Path:
    return cli_env


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for cmd in ("db", "owner", "token", "gateway", "device", "config", "demo"):
        assert cmd in out
    for sub in (("db", "--help"), ("gateway", "add", "--help"), ("device", "list", "--help")):
        assert run(capsys, *sub)[0] == 0


def test_enrol_flow(env: Path, capsys: pytest.CaptureFixture[str],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "owner", "add", "Shennong Mall")[0] == 0
    code, out, _ = run(capsys, "owner", "token", "Shennong Mall")
    assert code == 0 and out.strip().splitlines()[-1].startswith("vpp_")
    add = ["gateway", "add", "--owner", "Shennong Mall", "--site", "mall", "--host",
           "127.0.0.1", "--port", "15021", "--unit-ids", "1-3", "--kind", "commercial_building",
           "--profile", "coolmaster-vrf", "--rated-kw", "500", "--min-kw", "100",
           "--param", "max_shed_kw=200"]
    # the shipped default refuses a loopback gateway, and says what to set to rehearse
    code, _, err = run(capsys, *add)
    assert code == 2 and "VPP_ENROLMENT__ALLOW_LOOPBACK=true" in err, err
    monkeypatch.setenv("VPP_ENROLMENT__ALLOW_LOOPBACK", "true")
    code, out, err = run(capsys, *add)
    assert code == 0, err
    assert "3 device(s)" in out
    code, out, _ = run(capsys, "device", "list", "--kind", "commercial_building")
    assert code == 0 and out.count("coolmaster-vrf") == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "toaster"], "unknown device kind 'toaster'"),
        (["--kind", "industrial_load", "--min-kw", "-5"], "negative limit min_setpoint_kw=-5"),
        (["--kind", "industrial_load", "--min-kw", "400", "--max-kw", "100"], "inverted limits"),
        (["--kind", "battery", "--unit-ids", "1,1", "--param", "capacity_kwh=100"],
         "duplicate unit id 1 on gateway"),
        (["--kind", "battery"], "params.capacity_kwh: Field required"),
    ],
)
def test_gateway_add_rejects_bad_input_and_writes_nothing(
    env: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    run(capsys, "db", "upgrade")
    run(capsys, "owner", "add", "o")
    base = ["gateway", "add", "--owner", "o", "--site", "s", "--host", "127.0.0.1",
            "--profile", "p", "--rated-kw", "500"]
    if "--unit-ids" not in args:
        base += ["--unit-ids", "1"]
    code, _, err = run(capsys, *base, *args)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    engine = make_engine(f"sqlite:///{env}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM gateway")).scalar() == 0
    engine.dispose()


def test_config_check(capsys: pytest.CaptureFixture[str], tmp_path: Path, env: Path) -> None:
    code, out, _ = run(capsys, "config", "check", "config/zhuzhou-demo.toml")
    assert code == 0 and "ok" in out
    bad = tmp_path / "bad.toml"
    bad.write_text("[polling]\ninterval_s = -1\n")
    code, _, err = run(capsys, "config", "check", str(bad))
    assert code == 2
    assert f"{bad}: key polling.interval_s: Input should be greater than 0" in err



def test_config_check_refuses_a_programme_off_the_market_interval(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, env: Path) -> None:
    """One market interval: the programme's measurement interval is the service's; an unknown
    programme is named with its key."""
    from vpp.packaged import programmes_dir

    code, out, _ = run(capsys, "config", "check")
    assert code == 0 and "interval 15 min, programme hunan-2026" in out
    thirty = tmp_path / "thirty.toml"
    thirty.write_text("[service]\nmarket_interval_minutes = 30\n")
    code, _, err = run(capsys, "config", "check", str(thirty))
    assert code == 2
    assert ("key bidding.programme: programme hunan-2026 measures in 15-minute intervals but "
            "service.market_interval_minutes is 30") in err
    own = tmp_path / "programmes"
    own.mkdir()
    text30 = (programmes_dir() / "hunan-2026.toml").read_text().replace(
        "measurement_interval_minutes = 15", "measurement_interval_minutes = 30")
    (own / "hunan-2026.toml").write_text(text30)
    both = tmp_path / "both.toml"
    both.write_text(f'[service]\nmarket_interval_minutes = 30\n[bidding]\nprogrammes_dir = '
                    f'"{own.as_posix()}"\n')
    assert run(capsys, "config", "check", str(both))[0] == 0
    nope = tmp_path / "nope.toml"
    nope.write_text('[daemon.openadr]\nprogramme = "nope"\n')
    code, _, err = run(capsys, "config", "check", str(nope))
    assert code == 2 and "key daemon.openadr.programme: no programme 'nope'" in err


def test_unreachable_database_and_missing_schema(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "device", "list")
    assert code == 1 and "run `vpp db upgrade`" in err
    monkeypatch.setenv("VPP_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    code, _, err = run(capsys, "db", "upgrade")
    assert code == 1 and err.startswith("error: cannot reach database") and err.count("\n") == 1


@pytest.mark.postgres
def test_database_url_selects_postgres(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    pg_schema: tuple[str, str],
) -> None:
    url, schema = pg_schema
    # a schema-scoped URL via libpq options
    monkeypatch.setenv("VPP_DATABASE_URL", f"{url}?options=-csearch_path%3D{schema}")
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "owner", "add", "pg-owner")[0] == 0
    engine = make_engine(url, search_path=schema)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM owner")).scalar() == "pg-owner"
    engine.dispose()


def test_installed_script_and_demo(tmp_path: Path, repo_root: Path) -> None:
    """The console script runs the demo on a fresh SQLite file and prints the fleet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPP_")}
    env["VPP_SERVICE__DATA_DIR"] = str(tmp_path / "data")
    exe = Path(sys.executable).parent / "vpp"
    # the one-day city simulation that follows is covered by tests/sim/test_season.py
    proc = subprocess.run([str(exe), "demo", "--no-simulate"], cwd=repo_root, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Zhuzhou demo fleet" in proc.stdout
    for kind in ("commercial_building", "industrial_load", "ev_charger", "battery"):
        assert kind in proc.stdout
    assert (tmp_path / "data" / "demo.sqlite3").exists()
