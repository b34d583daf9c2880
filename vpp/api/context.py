"""Where handlers find the daemon's parts: ``request.app[SERVICES]``, a
:class:`~vpp.daemon.parts.DaemonParts` (every part present)."""

from __future__ import annotations

from aiohttp import web

from vpp.daemon.parts import DaemonParts

SERVICES: web.AppKey[DaemonParts] = web.AppKey("vpp.services", DaemonParts)
