"""``vpp demo``: the main job end to end on the embedded default (SQLite).

Migrate a fresh SQLite database, load the Zhuzhou demo fleet from ``config/`` and print it; then
simulate one event day of the Zhuzhou 2025 scenario at city scale through the production
forecasting, scheduling, bidding and settlement code (``sim.season.run_demo_day``), write its
report and print the headline against the 5% goal.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from vpp import fleet
from vpp.cli.common import app_context, console
from vpp.cli.device_cmd import device_table
from vpp.config import load_settings
from vpp.db import make_engine, session_scope, upgrade
from vpp.packaged import DEMO_CONFIG


def demo(
    ctx: typer.Context,
    simulate: bool = typer.Option(
        True, "--simulate/--no-simulate",
        help="Also simulate one event day of the city scenario (about 1.5 minutes).",
    ),
) -> None:
    """Run the demo: fresh SQLite database, the Zhuzhou demo fleet, and what exists of the rest."""
    actx = app_context(ctx)
    settings = load_settings(actx.config_path or DEMO_CONFIG)
    db_path = settings.service.data_dir / "demo.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{db_path.as_posix()}")
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("migrating and loading the demo fleet", total=2)
        upgrade(engine)
        progress.advance(task)
        with session_scope(engine) as s:
            fleet.load_fleet(s, settings.owners)
        progress.advance(task)
    with session_scope(engine) as s:
        rows = fleet.list_devices(s)
    console.print(f"database: {db_path} (SQLite, migrated to head)", highlight=False)
    console.print(device_table(rows, title=f"{settings.city.name} demo fleet"))
    by_kind: Counter[str] = Counter()
    kw_by_kind: defaultdict[str, float] = defaultdict(float)
    for r in rows:
        by_kind[r.device.kind] += 1
        kw_by_kind[r.device.kind] += r.device.rated_power_kw
    summary = Table("kind", "devices", "rated MW", title="By kind")
    for k in sorted(by_kind):
        summary.add_row(k, str(by_kind[k]), f"{kw_by_kind[k] / 1000:.3f}")
    console.print(summary)
    if not simulate:
        return

    from sim.season import run_demo_day

    out_dir = settings.service.data_dir / "demo-report"
    console.print(
        "\nSimulating one event day of the Zhuzhou 2025 scenario at city scale "
        "(in-process devices, production scheduler, bidding and settlement)...",
        highlight=False,
    )
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("simulating", total=None)

        def report(stage: str, done: int, total: int) -> None:
            bar.update(task, description=f"simulating {stage}", completed=done, total=total)

        headline = run_demo_day(settings, out_dir, progress=report)
    console.print(f"[bold]Headline:[/bold] {headline.text()}", highlight=False)
    console.print(f"report: {out_dir}", highlight=False)
