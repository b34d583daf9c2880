"""The aiohttp application: the JSON API under ``/api/v1``, ``/metrics`` and the dashboard."""

from __future__ import annotations

from typing import Any

from aiohttp import web

import vpp
from vpp.api import (
    routes_admission,
    routes_console,
    routes_events,
    routes_fleet,
    routes_ocpp,
    routes_owner_devices,
    routes_owner_portal,
    routes_performance,
    routes_system,
    routes_tokens,
)
from vpp.api.context import PARTS
from vpp.api.errors import ServerLogger, error_middleware
from vpp.api.openapi import build_openapi
from vpp.api.routing import MAX_BODY_BYTES, Call, Route, add_routes
from vpp.daemon.metrics import CONTENT_TYPE_LATEST
from vpp.daemon.parts import DaemonParts

OPENAPI_KEY: web.AppKey[dict[str, Any]] = web.AppKey("vpp.openapi", dict)


async def openapi_json(call: Call) -> web.Response:
    return web.json_response(call.request.app[OPENAPI_KEY])


ROUTES: list[Route] = [
    *routes_system.ROUTES,
    Route("GET", "/api/v1/openapi.json", openapi_json, "This document", "system", None),
    *routes_fleet.ROUTES,
    *routes_ocpp.ROUTES,
    *routes_events.ROUTES,
    *routes_tokens.ROUTES,
    *routes_console.ROUTES,
    *routes_owner_portal.ROUTES,
    *routes_owner_devices.ROUTES,
    *routes_admission.ROUTES,
    *routes_performance.ROUTES,
]


async def metrics(request: web.Request) -> web.Response:
    body = request.app[PARTS].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    resp = await handler(request)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Cache-Control", "no-store")
    if request.path.startswith("/dashboard"):
        # the pages load nothing but their own files: no CDN, no inline script
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
    return resp


def build_app(parts: DaemonParts) -> web.Application:
    """The web application over the daemon's ``parts`` (which the caller starts and stops)."""
    from vpp.dashboard import add_dashboard

    app = web.Application(middlewares=[error_middleware, security_headers],
                          client_max_size=MAX_BODY_BYTES,
                          # requests aiohttp's parser refuses: one log line, no traceback
                          handler_args={"logger": ServerLogger()})
    app[PARTS] = parts
    app[OPENAPI_KEY] = build_openapi(ROUTES, "Xiang VPP API", getattr(vpp, "__version__", "0"))
    add_routes(app, ROUTES)
    app.router.add_get("/metrics", metrics, name="metrics")
    add_dashboard(app)
    return app
