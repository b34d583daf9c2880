"""Where handlers find the daemon's parts: ``request.app[PARTS]``, a
:class:`~vpp.daemon.parts.DaemonParts` (every part present)."""

from __future__ import annotations

from aiohttp import web

from vpp.daemon.parts import DaemonParts

PARTS: web.AppKey[DaemonParts] = web.AppKey("vpp.parts", DaemonParts)
