"""What the conformance run found, one case each: a method a path does not declare is 405 with
``Allow`` and the error body; ids outside 1..2^31-1 are 400 and the document says so; bodies are
read as the document types them (a timestamp is never a number, 19.0 is the integer 19); query
timestamps are ISO 8601; every operation lists its statuses one by one (no ``4XX`` ranges)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.vpp.api.conftest import Api
from vpp.api.app import ROUTES
from vpp.api.openapi import error_statuses
from vpp.api.routing import MAX_ID


async def _call(api: Api, method: str, path: str, token: str | None = None,
                body: str | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    async with api.http.request(method, api.url + path, headers=headers, data=body) as r:
        data = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, dict(r.headers), data


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("TRACE", "/api/v1/devices", "GET"),
    ("OPTIONS", "/api/v1/gateways/1", "DELETE, GET, PATCH"),
    ("PUT", "/api/v1/owners", "GET, POST"),
    ("DELETE", "/api/v1/health", "GET"),
])
async def test_an_undeclared_method_is_405_with_allow(api: Api, method: str, path: str,
                                                      allow: str) -> None:
    status, headers, body = await _call(api, method, path, api.tokens.operator)
    assert status == 405, body
    assert headers["Allow"] == allow
    assert body["error"]["code"] == "method_not_allowed"
    assert method in body["error"]["message"] and allow in body["error"]["message"]


@pytest.mark.parametrize(("raw", "says"), [
    ("0", "at least 1"), ("-3", "whole number"), (str(2**31), f"at most {MAX_ID}"),
    ("9" * 5000, f"at most {MAX_ID}"), ("\u00b2", "whole number"),
])
async def test_ids_outside_the_documented_range_are_400(api: Api, raw: str, says: str) -> None:
    status, _, body = await _call(api, "GET", f"/api/v1/devices/{raw}", api.tokens.operator)
    assert status == 400, body
    assert body["error"]["code"] == "invalid_input" and says in body["error"]["message"]


async def test_the_document_bounds_every_id_and_lists_every_status(api: Api) -> None:
    status, _, doc = await _call(api, "GET", "/api/v1/openapi.json")
    assert status == 200
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            route = next(r for r in ROUTES if r.path == path and r.method == method.upper())
            for p in op["parameters"]:
                if p["in"] == "path" and p["schema"]["type"] == "integer":
                    assert (p["schema"]["minimum"], p["schema"]["maximum"]) == (1, MAX_ID)
            declared = set(op["responses"])
            assert declared == {str(route.status)} | {str(s) for s in error_statuses(route)}
            assert not any(c.endswith("XX") for c in declared), (method, path)
            for code in declared - {str(route.status)}:
                schema = op["responses"][code]["content"]["application/json"]["schema"]
                assert schema["allOf"][0] == {"$ref": "#/components/schemas/ErrorOut"}


def _call_body(**over: Any) -> str:
    import json

    body = {"external_id": "conf-1", "event_type": "day_ahead",
            "start": "2030-01-01T10:00:00+08:00", "end": "2030-01-01T11:00:00+08:00",
            "requested_kw": 100}
    body.update(over)
    return json.dumps(body)


@pytest.mark.parametrize(("body", "field"), [
    (_call_body(start=0), "body.start"),  # was read as 1970-01-01
    (_call_body(requested_kw="100"), "body.requested_kw"),
    ('{"external_id": "x", "requested_kw": NaN}', "body"),
])
async def test_bodies_are_read_as_the_document_types_them(api: Api, body: str,
                                                          field: str) -> None:
    status, _, out = await _call(api, "POST", "/api/v1/grid/calls", api.tokens.operator, body)
    assert status == 400, out
    assert out["error"]["message"].startswith(field), out


async def test_a_whole_number_written_19_0_is_an_integer(api: Api) -> None:
    """The body is read before the handler looks for the gateway: 404 means it was accepted."""
    status, _, out = await _call(api, "PATCH", "/api/v1/gateways/1", api.tokens.operator,
                                 '{"port": 1502.0}')
    assert status == 404 and out["error"]["code"] == "not_found", out
    status, _, out = await _call(api, "PATCH", "/api/v1/gateways/1", api.tokens.operator,
                                 '{"port": 1502.5}')
    assert status == 400 and out["error"]["message"].startswith("body.port"), out


async def test_query_timestamps_are_iso_8601(api: Api) -> None:
    status, _, out = await _call(api, "GET", "/api/v1/devices/1/telemetry?end=0.5",
                                 api.tokens.operator)
    assert status == 400 and "query.end" in out["error"]["message"], out


def test_the_router_and_the_error_statuses_agree() -> None:
    """A public route can answer neither 401 nor 403; every route can answer 500."""
    for r in ROUTES:
        st = error_statuses(r)
        assert 500 in st
        assert (401 in st) == (r.roles is not None)
