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
    role: str | None = typer.Option(
        None, "--role", help="all (one process), poller or planner: one process of a cluster "
                             "over PostgreSQL (default: cluster.role; docs/scale.md)."),
    worker_id: str | None = typer.Option(
        None, "--worker-id", help="This process's name in the cluster (default: "
                                  "cluster.worker_id, else hostname-pid)."),
) -> None:
    """Run the daemon until SIGTERM or Ctrl-C; then drain and exit 0."""
    actx = app_context(ctx)
    settings = _with_cluster(actx.settings, role, worker_id)
    engine = actx.engine()  # checks reachability and that the schema is current
    handler = configure_logging(settings.daemon.log_level, json_lines=log_json)
    try:
        _run(settings, engine, host, port, sim_clock)
    finally:  # the handler holds this process's stderr: leave no handler on a closed stream
        logging.getLogger().removeHandler(handler)


def _with_cluster(settings: Settings, role: str | None, worker_id: str | None) -> Settings:
    """The settings with ``--role`` / ``--worker-id`` applied; a role that cannot run here
    (not one of the three, or a cluster role on SQLite) is a usage error (exit 2)."""
    if role is None and worker_id is None:
        return settings
    from pydantic import ValidationError

    from vpp.config_cluster import ClusterSettings, role_error

    update = {k: v for k, v in (("role", role), ("worker_id", worker_id)) if v is not None}
    try:
        cluster = ClusterSettings.model_validate({**settings.cluster.model_dump(), **update})
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"], param_hint="--role/--worker-id"
                                 ) from None
    err = role_error(cluster.role, settings.database_url)
    if err is not None:
        raise typer.BadParameter(err, param_hint="--role")
    return settings.model_copy(update={"cluster": cluster})


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
