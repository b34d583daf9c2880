"""A crash inside settlement loses nothing and counts nothing twice.

Two finished events wait to be settled. A settle step runs in its own process and is
SIGKILLed at a fault-injection point (:mod:`vpp.failpoints`): first inside the ledger
transaction of the first event (every row written, nothing committed), then right after the
first event's commit. After each kill each event is settled whole or not at all
(:func:`tests.reliability.settlement.check_settlements`: one settlement, one ledger transaction
whose legs match it and its payouts, one audit record, status ``settled``; or none of these).
Then the restarted settle loop settles what is left, exactly once, and again is a no-op.
The SIGKILL loop over the whole daemon (``benchmarks/bench_reliability.py``) does the same
at random points, many times.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from tests.conftest import REPO_ROOT
from tests.reliability.settlement import add_finished_events, check_settlements
from tests.vpp.daemon.harness import daemon_settings, seed
from vpp import fleet
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.settle import Settler
from vpp.db import make_engine, session_scope, upgrade
from vpp.errors import ConfigError
from vpp.failpoints import ENV, configured
from vpp.models import LedgerTransaction


def _kill_at(point: str, url: str, search_path: str, tmp: Path) -> None:
    """Run one settle step in a process; SIGKILL it once it reports reaching ``point``."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), ENV: f"{point}=pause:60"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.settle_once", url, search_path, str(tmp)],
        cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        assert proc.stderr is not None
        for raw in proc.stderr:  # ends when the process does
            if b'"failpoint"' in raw and json.loads(raw).get("failpoint") == point:
                break
            assert time.monotonic() < deadline, f"failpoint {point} not reached"
        else:
            pytest.fail(f"the settle step ended (rc {proc.wait()}) without reaching {point}")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _owner_with_devices(engine: Engine) -> int:
    tokens = seed(engine)
    with session_scope(engine) as s:
        owner = fleet.get_owner(s, tokens.owner_id)
        fleet.add_gateway(s, owner, "plant", {"host": "10.9.9.9", "port": 502, "devices": [
            {"name": f"load-{u}", "kind": "industrial_load", "unit_id": u,
             "profile": "industrial-plc", "rated_power_kw": 20.0, "min_setpoint_kw": 0.0,
             "max_setpoint_kw": 20.0, "params": {"max_curtail_kw": 10.0}} for u in (1, 2)]})
    return tokens.owner_id


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_kill_inside_settlement_loses_and_doubles_nothing(
        backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if backend == "sqlite":
        url, search_path = request.getfixturevalue("sqlite_url"), ""
    else:
        url, search_path = request.getfixturevalue("pg_schema")
    engine = make_engine(url, search_path=search_path or None)
    try:
        upgrade(engine)
        owner_id = _owner_with_devices(engine)
        events = add_finished_events(engine, owner_id, 2, 0)

        _kill_at("ledger.posted", url, search_path, tmp_path)  # inside the first posting
        assert check_settlements(engine, events) == {"events": 2, "settled": 0}

        _kill_at("settle.committed", url, search_path, tmp_path)  # after the first commit
        assert check_settlements(engine, events) == {"events": 2, "settled": 1}

        infra = Infra.create(daemon_settings(tmp_path, url), Db(engine))
        try:
            await Settler(infra).step()  # the restart settles the second one
            assert check_settlements(engine, events) == {"events": 2, "settled": 2}
            await Settler(infra).step()  # and again: nothing more
        finally:
            infra.db.close()
        assert check_settlements(engine, events) == {"events": 2, "settled": 2}
        with session_scope(engine) as s:
            assert s.execute(select(func.count()).select_from(LedgerTransaction)).scalar_one() == 2
    finally:
        engine.dispose()


def test_failpoints_are_off_unless_configured_and_refuse_bad_specs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    configured.cache_clear()
    monkeypatch.delenv(ENV, raising=False)
    assert configured() == {}
    for bad in ("ledger.posted=crash", "ledger.posted=pause:x", "ledger.posted=pause:-1"):
        configured.cache_clear()
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(ConfigError, match=ENV):
            configured()
    configured.cache_clear()
    monkeypatch.setenv(ENV, "ledger.posted=pause:0.5, settle.start=pause:0")
    assert configured() == {"ledger.posted": 0.5, "settle.start": 0.0}
    configured.cache_clear()
