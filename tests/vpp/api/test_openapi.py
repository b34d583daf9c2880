"""The OpenAPI document is generated from the route table: it lists exactly the routes the
server answers, every reference resolves, and schemathesis (an independent OpenAPI 3 loader)
accepts it and finds the same operations."""

from __future__ import annotations

from typing import Any

import schemathesis

from tests.vpp.api.conftest import Api
from tests.vpp.api.openapi_ops import loaded_operations
from vpp.api.app import ROUTES, build_app


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for v in node.values():
            out += _refs(v)
        return out
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_document_matches_the_router(api: Api) -> None:
    async with api.http.get(api.url + "/api/v1/openapi.json") as r:
        assert r.status == 200
        doc = await r.json()
    assert doc["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    app = build_app(api.parts)
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path")
        if path and path.startswith("/api/v1/") and route.method != "HEAD":
            served.add((route.method, path))
    assert documented == served
    assert len(documented) == len(ROUTES)
    for ref in _refs(doc):
        name = ref.removeprefix("#/components/schemas/")
        assert name in doc["components"]["schemas"], ref
    for (method, path) in documented:
        op = doc["paths"][path][method.lower()]
        assert op["responses"] and op["summary"]
        ours = next(r for r in ROUTES if r.path == path and r.method == method)
        assert bool(op["security"]) == (ours.roles is not None)


async def test_an_independent_loader_accepts_it(api: Api) -> None:
    async with api.http.get(api.url + "/api/v1/openapi.json") as r:
        doc = await r.json()
    schema = schemathesis.openapi.from_dict(doc)
    ops = loaded_operations(schema)
    assert {(o.method.upper(), o.path) for o in ops} == {
        (r.method, r.path) for r in ROUTES}
