"""``vpp db``: schema migrations."""

from __future__ import annotations

import typer

from vpp.cli.common import app_context, console
from vpp.db import current_revision, head_revision, redact, upgrade

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(ctx: typer.Context) -> None:
    """Migrate the database to the newest schema (creates the SQLite file if needed)."""
    actx = app_context(ctx)
    engine = actx.engine(require_schema=False)
    before, after = upgrade(engine)
    url = redact(actx.settings.effective_database_url)
    if before == after:
        console.print(f"{url}: already at schema revision {after}", highlight=False)
    else:
        console.print(f"{url}: schema {before or 'empty'} -> {after}", highlight=False)


@app.command("current")
def current_cmd(ctx: typer.Context) -> None:
    """Print the schema revision of the database and the newest this version knows."""
    engine = app_context(ctx).engine(require_schema=False)
    console.print(f"database: {current_revision(engine) or 'empty'}; newest: {head_revision()}")
