"""schemathesis against the served ``/api/v1/openapi.json``: the real aiohttp app on a free
127.0.0.1 port over a real, migrated SQLite database, once with an operator token and once with
an owner token.

Every operation goes through schemathesis's examples, coverage (boundary values, every
undeclared method) and fuzzing phases, a bounded and deterministic number of cases each, and
every response must pass schemathesis's default checks: no 5xx, a documented status, the
documented content type and body schema; plus the strict ones the conformance run uses:
schema-violating input refused, an undeclared method (TRACE, OPTIONS, ...) answered 405 with
``Allow``, and ``Allow`` on OPTIONS naming exactly the declared methods.

The cases are generated from the document the route table builds (``schema.parametrize()`` needs
it at import time; schemathesis's fixture loader, ``from_fixture``, does not run under pytest 9),
and :func:`test_the_document_is_the_served_one` checks that the server serves that document.

``positive_data_acceptance`` (every request the schema allows is accepted: no 400) holds for every
operation but those in :data:`RULES_BEYOND_SCHEMA`, which refuse some schema-valid requests by a
rule JSON Schema cannot state (each named there); their 400 is declared, and
``status_code_conformance`` holds it.

Mocked: name resolution (the gateway host policy's ``resolve``) knows only literal addresses,
so no generated host name reaches DNS; and the policy allows only 127.0.0.0/8, so an enrolment
probe never leaves loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks as oc
from sqlalchemy import Engine

import vpp
from tests.conftest import free_port
from tests.vpp.daemon.harness import add_completed_event, daemon_settings, gateway_spec, seed
from vpp import fleet, gateway_hosts
from vpp.api.app import ROUTES, build_app
from vpp.api.openapi import build_openapi
from vpp.config import EnrolmentSettings
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.parts import build_parts
from vpp.db import make_engine, session_scope, upgrade
from vpp.errors import ValidationError
from vpp.models import Owner, Role

EXAMPLES = 6  # fuzzed cases per operation, on top of the coverage phase's boundary cases
SEED = 20250622
CHECKS = [
    schemathesis.checks.not_a_server_error, oc.status_code_conformance,
    oc.content_type_conformance, oc.response_schema_conformance,
    oc.negative_data_rejection, oc.unsupported_method, oc.allow_header_conformance,
    oc.missing_required_header,
]
DOCUMENT = build_openapi(ROUTES, "Xiang VPP API", getattr(vpp, "__version__", "0"))
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
SCHEMA.config.generation.update(max_examples=EXAMPLES, deterministic=True)
SCHEMA.config.seed = SEED
#: operations with a 400 for a rule the document states in words only, and the rule
RULES_BEYOND_SCHEMA = {
    ("POST", "/api/v1/grid/calls"): "end after start (one field against another)",
    ("GET", "/api/v1/devices/{device_id}/telemetry"): "start before end, at most 31 days",
    ("POST", "/api/v1/gateways"): "a device's params for its kind; the gateway host policy",
    ("POST", "/api/v1/charge-points"): "owner_id: required of an operator, an owner's own",
    ("PATCH", "/api/v1/gateways/{gateway_id}"): "the gateway host policy (configured ports)",
    ("PATCH", "/api/v1/devices/{device_id}"): "params and limits for the device's kind",
    ("PATCH", "/api/v1/devices/{device_id}/preferences"): "preferences of the device's kind",
    ("POST", "/api/v1/device-profiles"): "a profile's points and actions refer to each other",
    ("GET", "/api/v1/admission"): "a window on the programme's grid, end after start; a "
                                  "programme version in force on the day",
    ("POST", "/api/v1/performance/remedies"): "remedied_on not after today in the programme's "
                                              "zone",
    ("GET", "/api/v1/owner/events/{event_id}/devices"): "owner_id: required of an operator",
    ("POST", "/api/v1/owner/devices/{device_id}/preferences/preview"):
        "preferences of the device's kind; a device with a reading",
}
#: calls that can retire the calling token (revoke by id, rotate): the next call gets a new one
RETIRING = ("/api/v1/tokens/{token_id}/revoke", "/api/v1/tokens/rotate")


def _literal_only(host: str, port: int) -> list[gateway_hosts.Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        raise ValidationError(f"gateway host {host!r} does not resolve (test: no DNS)") from None


@dataclass
class Served:
    url: str
    engine: Engine
    owner_id: int
    device_ids: list[int]


@contextmanager
def _served(engine: Engine, tmp: Path) -> Iterator[Served]:
    """The app over the daemon's real parts (no loops running) in a thread with its own loop;
    schemathesis calls it synchronously."""
    cfg = daemon_settings(tmp, str(engine.url))
    cfg = cfg.model_copy(update={"enrolment": EnrolmentSettings(
        allowed_networks=["127.0.0.0/8"], allow_loopback=True)})
    parts = build_parts(Infra.create(cfg, Db(engine)))
    tokens = seed(engine)
    with session_scope(engine) as s:
        owner = s.get(Owner, tokens.owner_id)
        assert owner is not None
        enrolled = fleet.add_gateway(s, owner, "mall", gateway_spec(free_port()))
        ids = [int(d.id or 0) for d in enrolled.devices]
        add_completed_event(s, "conformance-1", datetime.now(UTC) - timedelta(days=1), ids,
                            tokens.owner_id, 8.0, 20.0)
    port, loop, ready = free_port(), asyncio.new_event_loop(), threading.Event()
    runner = web.AppRunner(build_app(parts), access_log=None, shutdown_timeout=1.0)

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()

        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.run_until_complete(parts.close())
        loop.close()

    thread = threading.Thread(target=run, name="conformance-api", daemon=True)
    thread.start()
    assert ready.wait(10), "API did not start"
    try:
        yield Served(f"http://127.0.0.1:{port}", engine, tokens.owner_id, ids)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@dataclass
class Caller:
    """Calls the served API as one role: its bearer token, a fresh one after any call that may
    have retired it."""

    served: Served
    http: requests.Session
    role: Role
    owner_id: int | None
    token: str = ""

    def _token(self, path: str) -> str:
        if not self.token:
            with session_scope(self.served.engine) as s:
                owner = s.get(Owner, self.owner_id) if self.owner_id is not None else None
                _, self.token = fleet.issue_token(s, self.role, owner, "conformance")
        token = self.token
        if path in RETIRING:
            self.token = ""
        return token

    def call(self, case: schemathesis.Case) -> None:
        headers = {"Authorization": f"Bearer {self._token(case.operation.path)}"}
        strict = (case.method.upper(), case.operation.path) not in RULES_BEYOND_SCHEMA
        checks = CHECKS + [oc.positive_data_acceptance] if strict else CHECKS
        case.call_and_validate(base_url=self.served.url, session=self.http, headers=headers,
                               checks=checks, timeout=10)


@pytest.fixture(scope="module", params=[Role.OPERATOR, Role.OWNER], ids=lambda r: r.value)
def caller(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Caller]:
    """One server and database per role, shared by that role's operations (module scope: a
    migration per operation would cost more than the checks)."""
    role: Role = request.param
    tmp = tmp_path_factory.mktemp(f"conformance-{role.value}")
    engine = make_engine(f"sqlite:///{tmp / 'vpp.sqlite3'}")
    upgrade(engine)
    with pytest.MonkeyPatch.context() as mp, requests.Session() as http:
        mp.setattr(gateway_hosts, "resolve", _literal_only)
        with _served(engine, tmp) as s:
            yield Caller(s, http, role, s.owner_id if role is Role.OWNER else None)
    engine.dispose()


def test_the_document_is_the_served_one(caller: Caller) -> None:
    served = caller.http.get(caller.served.url + "/api/v1/openapi.json", timeout=10).json()
    assert served == DOCUMENT


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(case: schemathesis.Case, caller: Caller) -> None:
    caller.call(case)
