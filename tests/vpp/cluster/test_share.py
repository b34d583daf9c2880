"""Rendezvous hashing (vpp.cluster.share) and the ``[cluster]`` settings' checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpp.cluster.share import assign
from vpp.config import Settings
from vpp.config_cluster import ClusterSettings

workers = st.sets(st.text(alphabet="abcdefgh-0123", min_size=1, max_size=8), min_size=1,
                  max_size=6)
gateways = st.sets(st.integers(min_value=1, max_value=10_000), max_size=60)


@given(gateways, workers)
def test_every_gateway_has_exactly_one_live_owner(gws: set[int], ws: set[str]) -> None:
    out = assign(gws, ws)
    assert set(out) == gws
    assert set(out.values()) <= ws
    assert assign(gws, sorted(ws, reverse=True)) == out  # same answer in every worker


@given(gateways, workers, st.text(alphabet="xyz", min_size=1, max_size=4))
def test_a_worker_joining_or_leaving_moves_only_its_own_gateways(
        gws: set[int], ws: set[str], new: str) -> None:
    before = assign(gws, ws)
    after = assign(gws, ws | {new})
    moved = {g for g in gws if before[g] != after[g]}
    assert all(after[g] == new for g in moved)  # joining: only to the new worker
    assert assign(gws, ws) == before  # and leaving: back as before


def test_no_workers_no_owners() -> None:
    assert assign([1, 2], []) == {}


def test_cluster_roles_need_postgresql() -> None:
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        Settings(cluster={"role": "poller"})
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        Settings(database_url="sqlite:///x.db", cluster={"role": "planner"})
    ok = Settings(database_url="postgresql://u@h/db", cluster={"role": "poller"})
    assert ok.cluster.role == "poller"
    assert Settings().cluster.role == "all"


def test_lease_outlives_two_heartbeats() -> None:
    with pytest.raises(ValueError, match="at least twice"):
        ClusterSettings(heartbeat_s=10.0, lease_s=15.0)


def test_serve_refuses_a_cluster_role_on_sqlite(cli_env: object,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """``vpp serve --role poller`` on the SQLite default: a usage error naming the reason, no
    traceback, nothing started."""
    from tests.conftest import run_cli

    code, _, err = run_cli(capsys, "db", "upgrade")
    assert code == 0, err
    code, _, err = run_cli(capsys, "serve", "--role", "poller", "--port", "0")
    assert code == 2
    assert "needs PostgreSQL" in err and "Traceback" not in err
