"""Where handlers find the daemon's parts: ``request.app[SERVICES]``."""

from __future__ import annotations

from aiohttp import web

from vpp.daemon.services import Services

SERVICES: web.AppKey[Services] = web.AppKey("vpp.services", Services)
