"""A cluster needs PostgreSQL (leases, LISTEN/NOTIFY, advisory locks): the cluster tests take
the shared ``empty_engine`` fixture on PostgreSQL only, instead of building and migrating a
SQLite database per test only to skip it (``harness.postgres_only`` stays as the guard)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.conftest import _engine_for


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on an empty PostgreSQL schema (the shared fixture, without its SQLite half)."""
    engine = _engine_for(request.param, request)
    yield engine
    engine.dispose()
