"""The dashboard: static HTML/JS pages served by the daemon (no CDN, no network at run time).

``/dashboard/`` is the operator console (live fleet power against baseline and target, the fleet
summary by kind, status and owner, events, one page of devices at a time: the server filters,
searches and pages); ``/dashboard/event.html?id=N`` one event (request, offer, plan against
baseline, metered load and the paid band, owners' shares, re-plans, settlement, ledger);
``/dashboard/owner.html`` the owner page (enrol a gateway and follow the probe, devices, events,
payouts). They read the JSON API with the token the user enters (sessionStorage only), switch
between Chinese and English, and draw charts with Apache ECharts, shipped in
``static/vendor/echarts`` (its LICENSE, NOTICE and VERSION beside it). The files are found
through :mod:`importlib.resources`, as the package's other data is.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from aiohttp import web


def static_dir() -> Path:
    """The packaged ``static`` folder (a real directory: aiohttp serves files from disk)."""
    folder = files("vpp.dashboard").joinpath("static")
    if not isinstance(folder, Path):  # e.g. imported from a zip file
        raise RuntimeError(f"the dashboard's files ({folder}) are not on a file system; "
                           "install the wheel unpacked (pip/uv do)")
    return folder


STATIC_DIR = static_dir()


async def _root(_: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/dashboard/")


async def _index(_: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


def add_dashboard(app: web.Application) -> None:
    from vpp.api.console_alerts import add_alert_socket

    add_alert_socket(app)  # before the static files, whose prefix it shares
    app.router.add_get("/", _root, name="root")
    app.router.add_get("/dashboard", _root, name="dashboard_noslash")
    app.router.add_get("/dashboard/", _index, name="dashboard")
    app.router.add_static("/dashboard/", STATIC_DIR, name="dashboard_static")
