"""Root of the ``vpp`` command: global options, sub-command groups, and error handling.

Every :class:`vpp.errors.VppError` ends the command with ``error: <one line>`` on stderr and a
non-zero exit (2 for bad input/config, 1 otherwise); users never see a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from vpp.cli import (
    config_cmd,
    db_cmd,
    demo_cmd,
    device_cmd,
    forecast_cmd,
    gateway_cmd,
    owner_cmd,
    poll_cmd,
    schedule_cmd,
    serve_cmd,
    settle_cmd,
    sim_cmd,
    simulate_cmd,
)
from vpp.cli.common import AppContext, err_console
from vpp.errors import ConfigError, ValidationError, VppError

app = typer.Typer(
    name="vpp",
    help="Xiang VPP: a virtual power plant and demand-response aggregator.",
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


app.add_typer(config_cmd.app, name="config")
app.add_typer(db_cmd.app, name="db")
app.add_typer(owner_cmd.app, name="owner")
app.add_typer(owner_cmd.token_app, name="token")
app.add_typer(gateway_cmd.app, name="gateway")
app.add_typer(device_cmd.app, name="device")
app.add_typer(forecast_cmd.app, name="forecast")
app.command("demo")(demo_cmd.demo)
app.command("schedule")(schedule_cmd.schedule)
app.command("simulate")(simulate_cmd.simulate)
app.command("serve")(serve_cmd.serve)
app.add_typer(sim_cmd.app, name="sim")
app.command("poll")(poll_cmd.poll)
app.command("bid")(settle_cmd.bid)
app.command("settle")(settle_cmd.settle)
app.command("report")(settle_cmd.report)
app.command("settle-demo")(settle_cmd.settle_demo)


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
