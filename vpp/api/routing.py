"""One route table drives both the aiohttp router and the OpenAPI document.

A :class:`Route` names its method, path, allowed roles, request body and query models (pydantic,
``extra="forbid"``) and response model. :func:`add_routes` wraps each handler so that it gets an
authenticated :class:`Call` with the validated body and query; :mod:`vpp.api.openapi` builds the
document from the same table, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

import pydantic
from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from vpp.api.auth import Principal, authenticate
from vpp.api.errors import ForbiddenError, describe_validation
from vpp.errors import NotFoundError, ValidationError
from vpp.models import Role

MAX_BODY_BYTES = 1 << 20
MIN_ID, MAX_ID = 1, 2**31 - 1  # row ids are positive 32-bit integers in PostgreSQL
MAX_NAME_CHARS = 100  # a string path parameter (a profile's name)
PATH_PARAM = re.compile(r"{(\w+)}")


@dataclass
class Call:
    """What a handler gets: the request, who asked, and the validated inputs."""

    request: web.Request
    principal: Principal | None
    body: Any = None
    query: Any = None
    path: dict[str, int | str] = field(default_factory=dict)

    @property
    def who(self) -> Principal:
        assert self.principal is not None
        return self.principal

    def owner_scope(self) -> int | None:
        """``None`` for operators (everything), the owner id for owners."""
        return self.who.owner_id if self.who.role is Role.OWNER else None

    def check_owner(self, owner_id: int | None, what: str) -> None:
        """Owners may only touch their own things; others' look like they do not exist."""
        scope = self.owner_scope()
        if scope is not None and owner_id != scope:
            raise NotFoundError(f"no {what}")


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    roles: frozenset[Role] | None  # None: public (no token)
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None  # a pydantic model, list[model], or None for raw responses
    status: int = 200
    path_types: dict[str, type] = field(default_factory=dict)
    #: error statuses the handler's own work can answer beyond those the route's shape implies
    #: (400 for inputs, 401/403 for roles, 404 for path ids: see vpp.api.openapi.error_statuses)
    raises: frozenset[int] = frozenset()

    @property
    def path_params(self) -> list[str]:
        return PATH_PARAM.findall(self.path)

    def path_type(self, name: str) -> type:
        return self.path_types.get(name, int if name.endswith("_id") else str)


def roles(*rs: Role) -> frozenset[Role]:
    return frozenset(rs)


def _parse_path(route: Route, request: web.Request) -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    for name in route.path_params:
        raw = request.match_info[name]
        if route.path_type(name) is int:
            if not (raw.isascii() and raw.isdigit()):
                raise ValidationError(f"path.{name}: must be a whole number, got {raw!r}")
            value = int(raw) if len(raw) <= 12 else MAX_ID + 1  # int() of 5,000 digits raises
            if value > MAX_ID:
                raise ValidationError(f"path.{name}: must be at most {MAX_ID}")
            if value < MIN_ID:
                raise ValidationError(f"path.{name}: must be at least {MIN_ID}")
            out[name] = value
        else:
            if len(raw) > MAX_NAME_CHARS:
                raise ValidationError(f"path.{name}: at most {MAX_NAME_CHARS} characters")
            out[name] = raw
    return out


async def _parse_body(route: Route, request: web.Request) -> Any:
    assert route.body is not None
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY_BYTES, actual_size=request.content_length
        )
    raw = await request.read()
    if not raw:
        raise ValidationError("body: a JSON object is required")
    try:
        data = json.loads(raw, parse_float=_json_number, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ValidationError(f"body: not valid JSON ({exc.__class__.__name__})") from None
    try:
        # strict, as the document says (a timestamp is a string, never a number; a boolean is
        # true or false), after reading 19.0 as the integer it is (JSON Schema's "integer")
        return route.body.model_validate_json(json.dumps(data), strict=True)
    except pydantic.ValidationError as exc:
        raise ValidationError(describe_validation(exc, "body")) from None


def _json_number(text: str) -> int | float:
    """A JSON number with a fraction or exponent: an int when its value is whole (``19.0``)."""
    value = float(text)
    return int(value) if value.is_integer() else value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_query(route: Route, request: web.Request) -> Any:
    assert route.query is not None
    data: dict[str, Any] = {}
    for k in request.query:
        values = request.query.getall(k)
        data[k] = values if len(values) > 1 else values[0]
    try:
        return route.query.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(describe_validation(exc, "query")) from None


def _adapter(response: Any) -> TypeAdapter[Any] | None:
    return None if response is None else TypeAdapter(response)


def wrap(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    adapter = _adapter(route.response)

    async def handle(request: web.Request) -> web.StreamResponse:
        principal = None
        if route.roles is not None:
            principal = await authenticate(request)
            if principal.role not in route.roles:
                raise ForbiddenError(
                    f"a {principal.role.value} token may not {route.method} {route.path} "
                    f"(allowed: {', '.join(sorted(r.value for r in route.roles))})"
                )
        call = Call(request=request, principal=principal, path=_parse_path(route, request))
        if route.query is not None:
            call.query = _parse_query(route, request)
        if route.body is not None:
            call.body = await _parse_body(route, request)
        result = await route.handler(call)
        if isinstance(result, web.StreamResponse):
            return result
        if adapter is None:
            return web.json_response(result, status=route.status)
        # one pass in pydantic-core straight to bytes (not a dict tree, then the json module)
        body = adapter.dump_json(adapter.validate_python(result, from_attributes=True))
        return web.Response(body=body, status=route.status, content_type="application/json",
                            charset="utf-8")

    handle.__name__ = route.handler.__name__
    return handle


def add_routes(app: web.Application, table: Sequence[Route]) -> None:
    for route in table:
        app.router.add_route(route.method, route.path, wrap(route), name=route.handler.__name__)


def response_models(response: Any) -> list[type[BaseModel]]:
    """The pydantic models a response annotation mentions (``M`` or ``list[M]``)."""
    if response is None:
        return []
    if get_origin(response) is list:
        return [a for a in get_args(response) if isinstance(a, type) and issubclass(a, BaseModel)]
    if isinstance(response, type) and issubclass(response, BaseModel):
        return [response]
    return []
