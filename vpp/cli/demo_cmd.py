"""``vpp demo``: the main job end to end on the embedded default (SQLite).

Today: migrate a fresh SQLite database, load the Zhuzhou demo fleet from ``config/``, print it.
Each capability that lands extends this command.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from vpp import fleet
from vpp.cli.common import app_context, console
from vpp.cli.device_cmd import device_table
from vpp.config import load_settings
from vpp.db import make_engine, session_scope, upgrade

DEMO_CONFIG = Path("config/zhuzhou-demo.toml")


def demo(ctx: typer.Context) -> None:
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
    kw_by_kind: Counter[str] = Counter()
    for r in rows:
        by_kind[r.device.kind] += 1
        kw_by_kind[r.device.kind] += r.device.rated_power_kw
    summary = Table("kind", "devices", "rated MW", title="By kind")
    for k in sorted(by_kind):
        summary.add_row(k, str(by_kind[k]), f"{kw_by_kind[k] / 1000:.3f}")
    console.print(summary)
