"""What every CLI command shares: the loaded settings, the engine, the console, error exits."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy import Engine

from vpp.config import Settings, load_settings
from vpp.db import check_connection, make_engine, require_current_schema

# Off a terminal (pipes, CI logs) rich would wrap tables at 80 columns; give them room.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


@dataclass
class AppContext:
    """Per-invocation state, built once by the root callback and passed down via ``ctx.obj``."""

    config_path: Path | None
    _settings: Settings | None = None
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    def engine(self, *, require_schema: bool = True) -> Engine:
        """The database engine; checks reachability and (by default) that the schema is current."""
        if self._engine is None:
            engine = make_engine(self.settings.effective_database_url)
            check_connection(engine)
            if require_schema:
                require_current_schema(engine)
            self._engine = engine
        return self._engine

    def close(self) -> None:
        """Release database connections at the end of the command."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def app_context(ctx: typer.Context) -> AppContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, AppContext)
    return obj


def parse_int_list(value: str, what: str) -> list[int]:
    """Parse ``"1,2,5-7"`` into ``[1, 2, 5, 6, 7]`` with a clear error."""
    out: list[int] = []
    try:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if lo > hi:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise typer.BadParameter(f"{what} must look like 1,2,5-7; got {value!r}") from None
    if not out:
        raise typer.BadParameter(f"{what} is empty")
    return out
