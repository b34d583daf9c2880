"""schemathesis against the served ``/api/v1/openapi.json`` of the real app on 127.0.0.1: every
operation, every role, a bounded number of generated requests each. No 5xx, every response
matches the documented status codes, content type and schema, and a refused request (any 4xx)
changes nothing in the database.

The enrolment probe is not attached here (``services.enrolment`` is None, so
``POST /gateways/{id}/probe`` answers 404): generated gateways name arbitrary hosts, and a test
must not connect anywhere but loopback.
"""

from __future__ import annotations

from pathlib import Path

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from requests.structures import CaseInsensitiveDict
from schemathesis.specs.openapi import checks as oc
from sqlalchemy import Engine

from tests.reliability.served import Served, served_api
from tests.reliability.world import fingerprint
from tests.vpp.api.openapi_ops import loaded_operations
from vpp import fleet
from vpp.db import session_scope
from vpp.models import Owner, Role

EXAMPLES = 4  # per operation and role: 25 operations x 6 roles x 4 = 600 requests at most
PUBLIC = ("/api/v1/health", "/api/v1/openapi.json")
CHECKS = [schemathesis.checks.not_a_server_error, oc.status_code_conformance,
          oc.content_type_conformance, oc.response_schema_conformance]


def _roles(s: Served) -> dict[str, str | None]:
    with session_scope(s.engine) as db:
        owner = db.get(Owner, s.tokens.owner_id)
        row, revoked = fleet.issue_token(db, Role.OWNER, owner, "revoked")
        db.flush()
        fleet.revoke_token(db, int(row.id or 0))
    return {"operator": s.tokens.operator, "owner_a": s.tokens.owner,
            "owner_b": s.tokens.other_owner, "grid": s.tokens.grid, "anonymous": None,
            "revoked": revoked}


def _fuzz(s: Served, http: requests.Session, op: schemathesis.APIOperation,
          role: str, token: str | None, tried: dict[str, int]) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate])
    @given(case=op.as_strategy())
    def run(case: schemathesis.Case) -> None:
        case.headers = CaseInsensitiveDict({**case.headers, **headers})
        before = fingerprint(s.engine)
        response = case.call(base_url=s.url, session=http, timeout=10)
        tried["requests"] += 1
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            tried["refused"] += 1
            assert fingerprint(s.engine) == before, (
                f"{role}: {case.method} {case.formatted_path} answered "
                f"{response.status_code} but changed the database")
            assert set(response.json()) == {"error"}
        if role in ("anonymous", "revoked") and op.path not in PUBLIC:
            assert response.status_code == 401, (role, case.method, op.path)

    run()


def test_schemathesis_every_operation_every_role(sqlite_engine: Engine, tmp_path: Path) -> None:
    tried = {"requests": 0, "refused": 0}
    with served_api(sqlite_engine, tmp_path) as s, requests.Session() as http:
        doc = http.get(s.url + "/api/v1/openapi.json", timeout=10).json()
        schema = schemathesis.openapi.from_dict(doc)
        roles = _roles(s)
        ops = loaded_operations(schema)
        assert len(ops) == len(doc["paths"] and [1 for p in doc["paths"].values() for _ in p])
        for op in ops:
            for role, token in roles.items():
                _fuzz(s, http, op, role, token, tried)
    assert tried["requests"] >= len(ops) * len(roles)
    print(f"schemathesis: {tried['requests']} requests, {tried['refused']} refused, 0 5xx")
