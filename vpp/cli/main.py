"""Root of the ``vpp`` command: global options, sub-command groups, and error handling.

Every :class:`vpp.errors.VppError` ends the command with ``error: <one line>`` on stderr and a
non-zero exit (2 for bad input/config, 1 otherwise); users never see a traceback.

Sub-commands load lazily (:class:`LazyGroup`): a command's module, and what it imports (the
scheduler with osqp and scipy, matplotlib, the simulator, the daemon), is imported only when
that command runs. Importing them all cost 3.4 s (measured, ``python -X importtime``) on every
``vpp`` call, 9-15 s on a loaded machine. ``vpp --help`` lists every command from :data:`COMMANDS`, whose help lines are the
commands' own (tests/vpp/test_cli_lazy.py checks that they agree).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

import typer
from typer import _click as click  # typer vendors click: its groups and contexts are these types
from typer.core import TyperCommand, TyperGroup

from vpp.cli.common import AppContext, err_console
from vpp.errors import ConfigError, ValidationError, VppError


@dataclass(frozen=True)
class LazyCommand:
    """``vpp <name>``: attribute ``attr`` of module ``module`` (a command function, or a
    :class:`typer.Typer` of sub-commands), listed in ``vpp --help`` with ``help``."""

    name: str
    module: str
    attr: str
    help: str

    def load(self) -> click.Command:
        target = getattr(importlib.import_module(self.module), self.attr)
        if isinstance(target, typer.Typer):  # a group, even of one sub-command
            command: click.Command = typer.main.get_group(target)
        else:
            single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
            single.command(self.name)(target)
            command = typer.main.get_command(single)
        command.name = self.name
        return command


COMMANDS: tuple[LazyCommand, ...] = (
    LazyCommand("demo", "vpp.cli.demo_cmd", "demo", "Run the demo: fresh SQLite database, the "
                "Zhuzhou demo fleet, and what exists of the rest."),
    LazyCommand("schedule", "vpp.cli.schedule_cmd", "schedule", "Plan one peak-shaving call: "
                "per-device setpoints, fleet response, shortfall."),
    LazyCommand("simulate", "vpp.cli.simulate_cmd", "simulate", "Simulate a season of grid "
                "calls and report delivered response against the goal."),
    LazyCommand("serve", "vpp.cli.serve_cmd", "serve",
                "Run the daemon until SIGTERM or Ctrl-C; then drain and exit 0."),
    LazyCommand("poll", "vpp.cli.poll_cmd", "poll",
                "Poll the enrolled, active devices and store telemetry."),
    LazyCommand("bid", "vpp.cli.settle_cmd", "bid", "Build and store the VPP's offer for an "
                "event (programme rules, caps and minimums)."),
    LazyCommand("admission", "vpp.cli.admission_cmd", "admission", "Check the VPP against its "
                "programme's admission rules (capacity, duration, share)."),
    LazyCommand("performance", "vpp.cli.performance_cmd", "app", "The VPP's performance "
                "record (warnings, suspension, deadline); record a remedy."),
    LazyCommand("settle", "vpp.cli.settle_cmd", "settle", "Settle a finished event the way the "
                "daemon does, or show its stored settlement."),
    LazyCommand("report", "vpp.cli.settle_cmd", "report", "Monthly report: every settled event "
                "(current version), owners' totals, capability."),
    LazyCommand("ledger", "vpp.cli.ledger_cmd", "app",
                "The ledger: post a month's capacity payment."),
    LazyCommand("settle-demo", "vpp.cli.settle_cmd", "settle_demo", "Run one grid call end to "
                "end on a fresh SQLite file through the daemon's own parts (intake and bid, planner, "
                "dispatch to simulated Modbus devices, delivery watch, settlement; "
                ":mod:`sim.event_demo`, on a manual clock), then pay, show and report it."),
    LazyCommand("config", "vpp.cli.config_cmd", "app", "Inspect and validate configuration."),
    LazyCommand("db", "vpp.cli.db_cmd", "app", "Database schema (Alembic migrations)."),
    LazyCommand("owner", "vpp.cli.owner_cmd", "app", "Device owners."),
    LazyCommand("token", "vpp.cli.owner_cmd", "token_app",
                "API tokens: create, list, rotate, revoke."),
    LazyCommand("gateway", "vpp.cli.gateway_cmd", "app", "Modbus TCP gateways."),
    LazyCommand("device", "vpp.cli.device_cmd", "app", "Enrolled devices."),
    LazyCommand("forecast", "vpp.cli.forecast_cmd", "app",
                "Load forecasts, customer baselines and backtests."),
    LazyCommand("sim", "vpp.cli.sim_cmd", "app",
                "Simulated devices behind real Modbus TCP servers."),
)


class LazyGroup(TyperGroup):
    """The root group: :data:`COMMANDS` are imported when run, listed without importing."""

    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(c.name for c in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        known = super().get_command(ctx, cmd_name)
        lazy = next((c for c in COMMANDS if c.name == cmd_name), None)
        if known is not None or lazy is None:
            return known
        if self._listing:  # `vpp --help`: the name and help line only
            return TyperCommand(cmd_name, help=lazy.help, short_help=lazy.help)
        command = lazy.load()
        self.add_command(command, cmd_name)
        return command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="vpp",
    help="Xiang VPP: a virtual power plant and demand-response aggregator.",
    cls=LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", envvar="VPP_CONFIG",
        help="TOML file applied over config/default.toml (e.g. config/zhuzhou-demo.toml).",
    ),
) -> None:
    ctx.obj = AppContext(config_path=config)
    ctx.call_on_close(ctx.obj.close)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vpp`` script."""
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except (ConfigError, ValidationError) as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        return 2
    except VppError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
