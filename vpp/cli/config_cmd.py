"""``vpp config check``: validate a configuration file without starting anything."""

from __future__ import annotations

from pathlib import Path

import typer

from bidding.programme import configured_programme
from vpp.cli.common import app_context, console
from vpp.config import load_settings
from vpp.timeutil import now

app = typer.Typer(help="Inspect and validate configuration.", no_args_is_help=True)


@app.command("check")
def check(
    ctx: typer.Context,
    file: Path | None = typer.Argument(
        None, help="File to check (default: the --config file, or config/default.toml)."
    ),
) -> None:
    """Validate FILE (over the packaged default.toml and VPP_* variables) and the programmes it
    names (in force today, on the market interval); exit 2 with file, key and reason if invalid."""
    settings = load_settings(file or app_context(ctx).config_path)
    today = now(settings.service.timezone)
    minutes = settings.service.market_interval_minutes
    programme = configured_programme(settings.bidding.programme, settings.bidding.programmes_dir,
                                     today, market_interval_minutes=minutes)
    if settings.daemon.openadr.programme:
        configured_programme(settings.daemon.openadr.programme, settings.bidding.programmes_dir,
                             today, market_interval_minutes=minutes, key="daemon.openadr.programme")
    n_dev = sum(len(g.devices) for o in settings.owners for s in o.sites for g in s.gateways)
    console.print(
        f"[green]ok[/green]: {file or app_context(ctx).config_path or 'defaults'} "
        f"({len(settings.owners)} owners, {n_dev} devices, database "
        f"{settings.effective_database_url.split('://')[0]}, timezone {settings.service.timezone}, "
        f"interval {minutes} min, programme {programme.name})",
        highlight=False,
    )
