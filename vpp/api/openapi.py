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
from vpp.api.routing import Route, response_models
from vpp.api.schemas import ErrorOut

REF = "#/components/schemas/{model}"


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
            "parameters": [
                {"name": p, "in": "path", "required": True,
                 "schema": {"type": "integer" if r.path_type(p) is int else "string"}}
                for p in r.path_params
            ],
        }
        if r.query is not None:
            op["parameters"] += _query_params(r.query)
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": REF.format(model=r.body.__name__)}}}}
        ok: dict[str, Any] = {"description": "OK"}
        if r.response is not None:
            ok["content"] = {"application/json": {"schema": _schema_of(r.response)}}
        err = {"description": "Error (code: " + ", ".join(sorted(ERROR_CODES)) + ")",
               "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorOut")}}}}
        op["responses"] = {str(r.status): ok, "4XX": err, "5XX": err}
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
                                "{\"error\": {\"code\", \"message\"}} with a stable code."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "x-error-codes": ERROR_CODES,
    }
