"""``vpp serve``: build the daemon's parts (:func:`vpp.daemon.parts.build_parts`), run the
supervised loops and the web server over them (:func:`vpp.api.app.build_app`), and drain cleanly
on SIGTERM/SIGINT. This module is the composition root: it sits above both :mod:`vpp.daemon` and
:mod:`vpp.api`, so the daemon never imports the HTTP layer (``tests/test_layers.py``).

Loops: ``poll`` (every ``polling.interval_s``: read the fleet, store telemetry), ``heartbeat``
(feed device watchdogs and check leases, every ``polling.heartbeat_fraction`` of the shortest
device watchdog, at most ``polling.watchdog_period_s``; independent of the poll cycle),
``control`` (plan / dispatch / watch / re-plan / finish; woken at once by a call), ``baselines``
(refresh the per-site load forecasts, :mod:`vpp.daemon.forecasts`; fix the baselines of
accepted events due within a day, ahead of their start), ``settle``
(finished events). The OpenADR VEN runs beside them when ``daemon.openadr.vtn_url`` is set,
the OCPP central system (:mod:`vpp.ocpp.central`, loop ``ocpp``) when ``ocpp.enabled``.
Drain order on stop: stop taking HTTP requests, let the running loop steps finish
(``daemon.drain_timeout_s``), stop the VEN, flush telemetry, close connections, dispose the
engine. Devices are not released on a drain: a restarted daemon resumes the event, and device
watchdogs/leases return them to their own behaviour if it does not come back.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from vpp.api.app import build_app
from vpp.cluster.executor import COMMANDS_LOOP
from vpp.config import Settings
from vpp.daemon.dbexec import Db
from vpp.daemon.fleet_runtime import HEARTBEAT_LOOP
from vpp.daemon.infra import Infra, real_rate, utc_now
from vpp.daemon.parts import DaemonParts, build_parts
from vpp.daemon.supervisor import Step
from vpp.domain.grid_calls import EventStatus
from vpp.errors import ConfigError, ValidationError
from vpp.models import Device, GridEvent
from vpp.poller import Poller

if TYPE_CHECKING:
    from vpp.daemon.openadr_ven import Ven
    from vpp.ocpp.central import OcppCentral

log = logging.getLogger("vpp.daemon")


def _device_counts(s: Session) -> dict[str, int]:
    out: dict[str, int] = {}
    for status in s.exec(select(Device.status)).all():
        out[str(status)] = out.get(str(status), 0) + 1
    return out


def _upcoming(s: Session, now: datetime) -> list[int]:
    return [int(i or 0) for i in s.exec(select(GridEvent.id).where(
        GridEvent.status == EventStatus.ACCEPTED, col(GridEvent.start) <= now + timedelta(days=1),
        col(GridEvent.end) > now)).all()]


def tls_context(cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext | None:
    """A server TLS context when ``api.tls_cert_file`` is configured (TLS 1.2 or later), else
    None (plain HTTP, meant for loopback). Refuses half a configuration or unreadable files."""
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        raise ConfigError("api.tls_cert_file and api.tls_key_file must be set together")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"api.tls_cert_file/api.tls_key_file: cannot load {cert_file}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    return ctx


class Daemon:
    """One aggregator process. ``await start()``, then ``await stop()`` (or ``run()``)."""

    def __init__(self, settings: Settings, engine: Engine, *,
                 clock: Callable[[], datetime] = utc_now, poller: Poller | None = None,
                 host: str | None = None, port: int | None = None,
                 clock_rate: Callable[[], float] | None = None) -> None:
        """``clock``: the time everything is timed in (events, intervals, readings, baselines,
        settlement delay); ``clock_rate``: its simulated seconds per real second when it is a
        simulated clock (``vpp serve --sim-clock``), which the heartbeat period follows because
        device watchdogs count on the devices' clock. Loop periods stay real seconds."""
        infra = Infra.create(settings, Db(engine), clock=clock,
                             clock_rate=clock_rate or real_rate)
        self.parts: DaemonParts = build_parts(infra, poller)
        self.host = host or settings.api.host
        self.port = settings.api.port if port is None else port
        self.ven: Ven | None = None
        if settings.daemon.openadr.vtn_url:
            from vpp.daemon.openadr_ven import Ven  # openleadr only when a VTN is configured

            self.ven = Ven(infra, settings.daemon.openadr, self.parts.intake, self.parts.fleet)
        self.ocpp: OcppCentral | None = None
        if settings.ocpp.enabled:
            from vpp.ocpp.central import OcppCentral  # the ocpp library only when enabled

            self.ocpp = OcppCentral(infra, self.parts.fleet, settings.ocpp)
        self._runner: web.AppRunner | None = None
        self._stopped = asyncio.Event()
        self.url = ""

    async def _baselines_step(self) -> None:
        s = self.parts
        try:
            await s.forecasts.step()
        except Exception as exc:  # a forecast failure must not stop baselines being fixed
            log.exception("forecast refresh failed")
            s.forecasts.set_state("error", f"{type(exc).__name__}: {exc}")
            s.metrics.forecast_refreshes.labels("error").inc()
        for event_id in await s.db.run(_upcoming, s.clock()):
            try:
                await s.db.run(s.control.planner.fix_baselines, event_id)
            except ValidationError as exc:
                log.warning("baselines not fixed yet: %s", exc.message, extra={"event_id": event_id})
        counts = await s.db.run(_device_counts)
        s.metrics.devices.clear()
        for status, n in counts.items():
            s.metrics.devices.labels(status).set(n)

    def _add_polling(self) -> None:
        s = self.parts
        settings = s.settings
        sup = s.supervisor
        sup.add("poll", s.fleet.poll_step, settings.polling.interval_s,
                timeout_s=max(30.0, 5 * settings.polling.interval_s), fixed_rate=True)
        # heartbeats on their own loop: a slow poll cycle (a silent device, long timeouts) or
        # polls skipped during dispatch must not starve the device watchdogs; the period
        # follows the shortest watchdog (FleetRuntime.heartbeat_step); a step waits for at
        # worst a silent device's timeouts, so it is not cut short by the loop timeout
        p = settings.polling
        sup.add(HEARTBEAT_LOOP, s.fleet.heartbeat_step, p.watchdog_period_s,
                timeout_s=max(60.0, 10 * p.timeout_s * (p.retries + 1)), fixed_rate=True)
        cl, node = settings.cluster, s.cluster
        if node.poller is not None:  # a poller worker's leases, commands
            w = node.poller
            sup.add("lease", w.share.step, cl.heartbeat_s, timeout_s=cl.lease_s / 2)
            sup.add(COMMANDS_LOOP, w.executor.step, cl.command_sweep_s,
                    timeout_s=max(60.0, 2 * cl.command_timeout_s))
            # LISTEN: each step waits up to command_sweep_s for a NOTIFY, which wakes COMMANDS
            sup.add("listen", w.listener.step, 0.01, timeout_s=cl.command_sweep_s + 30.0)

    def _add_planning(self) -> None:
        s = self.parts
        settings = s.settings
        sup = s.supervisor
        node = s.cluster.planner
        if node is not None:  # the planner of a cluster: only while it holds the lock
            cl = settings.cluster
            sup.add("planner-lock", node.lock.step, cl.planner_retry_s, timeout_s=30.0)
            sup.add("states", node.states.step, settings.polling.interval_s,
                    timeout_s=max(30.0, 5 * settings.polling.interval_s), fixed_rate=True)
        g = self._planner_only
        sup.add("control", g(s.control.step), settings.daemon.control_period_s, timeout_s=300.0)
        sup.add("baselines", g(self._baselines_step), 60.0, timeout_s=300.0)
        sup.add("settle", g(s.settler.step), settings.daemon.settle_period_s, timeout_s=300.0)
        if settings.scheduler.tou_schedule:  # batteries between calls, one step per interval
            sup.add("tou", g(s.tou.step), settings.daemon.control_period_s, timeout_s=300.0)
        if self.ven is not None:
            sup.add("openadr", g(self.ven.step), settings.daemon.openadr.report_interval_s,
                    timeout_s=60.0)

    def _planner_only(self, step: Step) -> Step:
        """``step`` as is in a single process; in a cluster's planner, run only while this
        process holds the planner lock (a standby skips it)."""
        node = self.parts.cluster.planner
        if node is None:
            return step
        lock = node.lock

        async def guarded() -> None:
            if lock.held:
                await step()

        return guarded

    async def start(self) -> str:
        s = self.parts
        settings = s.settings
        sup = s.supervisor
        role = settings.cluster.role
        if role in ("all", "poller"):
            if s.cluster.share is not None:
                await s.cluster.share.step()  # take this worker's share before the first poll
            await s.fleet.refresh()
            self._add_polling()
        if role in ("all", "planner"):
            self._add_planning()
        if self.ocpp is not None:  # charge points connect; the loop follows the registry
            await self.ocpp.start()
            sup.add("ocpp", self.ocpp.sync, settings.polling.interval_s, timeout_s=60.0)
        app = build_app(s)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=5.0)
        await self._runner.setup()
        ssl_context = tls_context(settings.api.tls_cert_file, settings.api.tls_key_file)
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_context)
        await site.start()
        sockets = [sock.getsockname() for sock in site._server.sockets]  # type: ignore[union-attr]
        self.port = int(sockets[0][1])
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://{self.host}:{self.port}"
        sup.start()
        log.info("daemon started", extra={"url": self.url, "loops": [x.name for x in sup.statuses()]})
        return self.url

    async def stop(self) -> None:
        s = self.parts
        log.info("daemon draining")
        if self._runner is not None:
            await self._runner.cleanup()
        await s.supervisor.stop(s.settings.daemon.drain_timeout_s)
        if self.ven is not None:
            await self.ven.close()
        if self.ocpp is not None:
            await self.ocpp.stop()
        await s.close()
        log.info("daemon stopped")
        self._stopped.set()

    async def run(self) -> None:
        """Start, serve until SIGTERM or SIGINT, then drain."""
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()
