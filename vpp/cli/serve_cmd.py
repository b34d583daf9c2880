"""``vpp serve``: run the aggregator daemon (API, dashboard, metrics, control loops)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer
from sqlalchemy import Engine

from vpp.cli.common import app_context, err_console
from vpp.config import Settings
from vpp.daemon.logs import configure_logging


def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, help="Bind address (default: api.host)."),
    port: int | None = typer.Option(None, min=0, max=65535,
                                    help="Port (default: api.port; 0 picks a free one)."),
    log_json: bool | None = typer.Option(None, "--log-json/--log-text",
                                         help="Log format (default: JSON unless on a terminal)."),
    sim_clock: Path | None = typer.Option(
        None, "--sim-clock", metavar="FILE",
        help="Run on the simulated clock that `vpp sim gateways --sim-clock FILE` writes (a "
             "rehearsal: events, intervals, readings and settlement follow its time and its "
             "`clock speed` / `clock skip` changes). Default: the real clock."),
) -> None:
    """Run the daemon until SIGTERM or Ctrl-C; then drain and exit 0."""
    actx = app_context(ctx)
    settings = actx.settings
    engine = actx.engine()  # checks reachability and that the schema is current
    handler = configure_logging(settings.daemon.log_level, json_lines=log_json)
    try:
        _run(settings, engine, host, port, sim_clock)
    finally:  # the handler holds this process's stderr: leave no handler on a closed stream
        logging.getLogger().removeHandler(handler)


def _run(settings: Settings, engine: Engine, host: str | None, port: int | None,
         sim_clock: Path | None) -> None:
    from vpp.server import Daemon

    if sim_clock is None:
        daemon = Daemon(settings, engine, host=host, port=port)
    else:
        from sim.clock import FileClock

        clock = FileClock(sim_clock)  # a clear error when the simulator has not written it
        daemon = Daemon(settings, engine, host=host, port=port, clock=clock.now,
                        clock_rate=clock.rate)
        err_console.print(f"vpp serve: on the simulated clock {sim_clock} "
                          f"({clock.now().isoformat(timespec='seconds')}, {clock.accel:g}x)",
                          highlight=False)
    err_console.print(f"vpp serve: starting on {daemon.host}:{daemon.port}", highlight=False)
    try:
        asyncio.run(daemon.run())
    except KeyboardInterrupt:  # pragma: no cover - signal handler normally catches it
        pass
