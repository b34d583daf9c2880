"""The OpenAPI 3.1 document, generated from the route table and the pydantic models.

Nothing is written by hand: paths, methods, parameters, request bodies, responses and security
come from :data:`vpp.api.app.ROUTES`, so the document cannot list a route that does not exist or
miss one that does (a test checks both directions against the aiohttp router).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from vpp.api.errors import ERROR_CODES
from vpp.api.routing import MAX_ID, MAX_NAME_CHARS, MIN_ID, Route, response_models
from vpp.api.schemas import ErrorOut
from vpp.models import Role

REF = "#/components/schemas/{model}"
ALL_ROLES = frozenset(Role)


def error_statuses(route: Route) -> dict[int, list[str]]:
    """Every error status ``route`` can answer, with the error codes each carries.

    From the route's shape: 400 for any input (path ids, query, body, a malformed
    Authorization header), 401 and 503 (the token is looked up) for a protected route, 403 when
    some role may not call it, 404 for a path id, 413 for a body, 500 always; then what the
    handler's own work raises (``Route.raises``: 404 for an id in the body, 409 conflicts).
    """
    out: set[int] = {500} | set(route.raises)
    if route.roles is not None or route.body or route.query or route.path_params:
        out.add(400)
    if route.roles is not None:
        out |= {401, 503}
        if route.roles != ALL_ROLES:
            out.add(403)
    if route.path_params:
        out.add(404)
    if route.body is not None:
        out.add(413)
    return {st: sorted(c for c, s in ERROR_CODES.items() if s == st) for st in sorted(out)}


def _error_response(status: int, codes: list[str]) -> dict[str, Any]:
    """The one error model (``ErrorOut``), its ``code`` narrowed to those of ``status``."""
    narrowed = {"properties": {"error": {"properties": {"code": {"enum": codes}}}}}
    return {"description": f"Error (code: {', '.join(codes)})",
            "content": {"application/json": {"schema": {
                "allOf": [{"$ref": REF.format(model="ErrorOut")}, narrowed]}}}}


def _path_param(route: Route, name: str) -> dict[str, Any]:
    if route.path_type(name) is int:
        schema: dict[str, Any] = {"type": "integer", "minimum": MIN_ID, "maximum": MAX_ID}
    else:
        schema = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _models(routes: Sequence[Route]) -> list[type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {}
    for r in routes:
        for m in [r.body, *response_models(r.response), ErrorOut]:
            if m is not None:
                seen[m.__name__] = m
    return list(seen.values())


def _schema_of(response: Any) -> dict[str, Any]:
    models = response_models(response)
    if models and isinstance(response, type):
        return {"$ref": REF.format(model=response.__name__)}
    if models:
        return {"type": "array", "items": {"$ref": REF.format(model=models[0].__name__)}}
    return TypeAdapter(response).json_schema(ref_template=REF)


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def build_openapi(routes: Sequence[Route], title: str, version: str) -> dict[str, Any]:
    inputs: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation") for r in routes for m in [r.body] if m is not None]
    outputs: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "serialization") for m in _models(routes) if (m, "validation") not in inputs]
    _, defs = models_json_schema(inputs + outputs, ref_template=REF)
    components: dict[str, Any] = dict(defs.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {
            "operationId": r.handler.__name__, "summary": r.summary, "tags": [r.tag],
            "parameters": [_path_param(r, p) for p in r.path_params],
        }
        if r.query is not None:
            op["parameters"] += _query_params(r.query)
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": REF.format(model=r.body.__name__)}}}}
        ok: dict[str, Any] = {"description": "OK"}
        if r.response is not None:
            ok["content"] = {"application/json": {"schema": _schema_of(r.response)}}
        op["responses"] = {str(r.status): ok} | {
            str(st): _error_response(st, codes) for st, codes in error_statuses(r).items()}
        if r.roles is not None:
            op["security"] = [{"bearer": []}]
            op["x-roles"] = sorted(x.value for x in r.roles)
        else:
            op["security"] = []
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Xiang VPP aggregator API. Errors are "
                                "{\"error\": {\"code\", \"message\"}} with a stable code; "
                                "each operation lists every status it can answer. A method a "
                                "path does not list is answered 405 with an Allow header."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "x-error-codes": ERROR_CODES,
    }
