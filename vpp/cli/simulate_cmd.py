"""``vpp simulate``: a demand-response season of a scenario, through the real system.

``--scale city`` runs the whole city fleet in process (device physics behind the adapter
protocol; forecasting, scheduling, bidding and settlement are the production modules) on an
accelerated clock and writes a report (markdown + PNG charts + summary.json). ``--scale
full-stack`` is the Modbus/daemon/REST variant (see docs/simulation.md for its status).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vpp.cli.common import app_context, console
from vpp.errors import ValidationError

SCALES = ("city", "full-stack")
FULL_STACK_ACCEL = 10.0  # ten simulated seconds per second: the daemon plans ~1,000 devices in
                         # real time, so a faster clock would end the event before the plan
FULL_STACK_POLL_S = 2.5  # poll cycle in real seconds: 25 simulated seconds, well inside the
                         # devices' 60 s watchdogs (heartbeats go with the poll step)


def simulate(
    ctx: typer.Context,
    scenario: str = typer.Option("zhuzhou-2025", help="config/scenarios/<name>.toml, or a path."),
    days: int | None = typer.Option(None, min=1, help="Only the first N days of the season "
                                    "(history days before it are added)."),
    scale: str = typer.Option("city", help="city | full-stack"),
    out: Path | None = typer.Option(None, help="Report directory (default data/sim/<scenario>)."),
    event_days: int | None = typer.Option(None, min=1, help="Stop after the first N event days."),
    max_devices: int | None = typer.Option(None, min=10, help="A stratified sample of the "
                                           "fleet instead of all of it (quick looks)."),
    skip_idle_days: bool = typer.Option(False, help="Simulate only the days some call's "
                                        "baseline or forecast needs (every call still runs)."),
) -> None:
    """Simulate a season of grid calls and report delivered response against the goal."""
    from sim.report import write_report
    from sim.scenarios import load_scenario
    from sim.season import RunOptions, run_season

    if scale not in SCALES:
        raise ValidationError(f"unknown scale {scale!r} (valid: {', '.join(SCALES)})")
    settings = app_context(ctx).settings
    scn = load_scenario(scenario)
    out_dir = out or settings.service.data_dir / "sim" / scn.name
    opts = RunOptions(scale=scale, days=days, max_devices=max_devices, event_days=event_days,
                      skip_idle_days=skip_idle_days)
    if scale == "full-stack" and (days is not None or event_days not in (None, 1)):
        raise ValidationError("--scale full-stack runs the first event day only "
                              "(drop --days / --event-days)")
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total} intervals"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task(f"simulating {scn.name}", total=None)

        last: list[str] = [""]

        def report(stage: str, done: int, total: int) -> None:
            progress.update(task, description=f"simulating {scn.name}: {stage}", completed=done,
                            total=total)
            head = stage.split(":")[0]
            if not console.is_terminal and head != last[0]:  # logs get one line per stage
                last[0] = head
                console.print(f"{stage} ({done}/{total})", highlight=False)

        if scale == "full-stack":
            from sim.fullstack import FullStackOptions, run_full_stack

            fs_opts = FullStackOptions(n_devices=max_devices or 1000, accel=FULL_STACK_ACCEL,
                                       poll_s=FULL_STACK_POLL_S)
            result = asyncio.run(run_full_stack(settings, scn, out_dir / "work", fs_opts,
                                                progress=report)).result
        else:
            result = asyncio.run(run_season(settings, scn, opts, report))
    page = write_report(result, out_dir)
    h = result.headline()
    console.print(f"[bold]{h.text()}[/bold]", highlight=False)
    console.print(f"report: {page}", highlight=False)


def demo_day(settings, out_dir: Path) -> str:  # type: ignore[no-untyped-def]
    """For ``vpp demo``: the one-event-day simulation; returns the headline text."""
    from sim.season import run_demo_day

    return run_demo_day(settings, out_dir).text()
