"""The dashboard: static HTML/JS pages served by the daemon (no CDN, no network).

``/dashboard/`` is the operator page (live fleet power against baseline and target, events with
delivery and revenue, per-device status); ``/dashboard/owner.html`` the owner page (sign in with
an owner token, enrol a gateway and follow the probe, devices, events, payouts). Both read the
JSON API with the token the user enters (kept in the browser's sessionStorage only) and switch
between Chinese and English.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"


async def _root(_: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/dashboard/")


async def _index(_: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


def add_dashboard(app: web.Application) -> None:
    app.router.add_get("/", _root, name="root")
    app.router.add_get("/dashboard", _root, name="dashboard_noslash")
    app.router.add_get("/dashboard/", _index, name="dashboard")
    app.router.add_static("/dashboard/", STATIC_DIR, name="dashboard_static")
