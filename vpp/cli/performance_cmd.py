"""``vpp performance``: the VPP's performance record under its programme
(:mod:`bidding.performance_record`); ``vpp performance remedy``: record the remedy of a
suspension.

``vpp performance`` prints the state (good, warned, suspended, expelled), since when, the
remedy deadline, the settled events' verdicts and each change's rule, or with ``--json`` the
typed record (the same document as ``GET /api/v1/performance``); it exits 1 while the daemon
refuses bids (suspended or expelled). ``vpp performance remedy --date YYYY-MM-DD --note TEXT``
records a remedy (audit-logged); a date in the future, or a remedy that changes nothing (the
VPP is not suspended, the date is before the suspension or past its deadline) is refused with
the reason and exit 2 / 1.
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pydantic
import typer
from rich.table import Table

from vpp.api.errors import describe_validation
from vpp.cli.common import app_context, console
from vpp.db import session_scope
from vpp.domain.performance import PerformanceOut, RemedyIn
from vpp.errors import ValidationError
from vpp.models import utcnow
from vpp.performance import add_remedy, performance_from_db

HELP = "The VPP's performance record (warnings, suspension, deadline); record a remedy."
app = typer.Typer(help=HELP, invoke_without_command=True)

_STATE = {"good": "[green]good[/green]", "warned": "[yellow]warned[/yellow]",
          "suspended": "[red]SUSPENDED[/red]", "expelled": "[red]EXPELLED[/red]"}


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{option} must be YYYY-MM-DD, got {value!r}") from None


def _print(rec: PerformanceOut) -> None:
    head = f"{rec.programme} (version of {rec.programme_version}), as of {rec.as_of}: "
    state = _STATE[rec.state] + (f" since {rec.since}" if rec.since else "")
    console.print(head + state, highlight=False)
    if rec.remedy_deadline is not None:
        console.print(f"  remedy deadline: {rec.remedy_deadline}", highlight=False)
    if rec.awaiting_first_response:
        console.print("  reinstated: the next response must pass", highlight=False)
    if rec.rules is None:
        console.print("  the programme keeps no performance record", highlight=False)
    else:
        r = rec.rules
        console.print(f"  failed responses in the last {r.failure_window_months} months: "
                      f"{rec.failures_in_window} (warning at {r.warn_after_failures}, "
                      f"suspension at {r.suspend_after_failures}); suspensions in the last "
                      f"{r.suspension_window_months} months: {rec.suspensions_in_window}",
                      highlight=False)
    if rec.refuses_bids:
        console.print(f"  bids refused: {rec.reason}", highlight=False, soft_wrap=True)
    events = Table("event", "day", "ratio", "floor", "verdict", "state after",
                   title="Settled events")
    for e in rec.events:
        events.add_row(str(e.event_id), str(e.day), f"{e.performance_ratio:.2f}",
                       str(e.floor_ratio), "pass" if e.passed else "[red]FAIL[/red]",
                       e.state_after)
    console.print(events)
    changes = Table("on", "from", "to", "rule", title="Changes")
    for c in rec.changes:
        changes.add_row(str(c.on), c.state_from, c.state_to, c.rule)
    console.print(changes)


@app.callback(invoke_without_command=True)
def performance(
    ctx: typer.Context,
    day: str | None = typer.Option(None, "--day", help="The record as of the end of this day "
                                   "YYYY-MM-DD (default: now)."),
    as_json: bool = typer.Option(False, "--json", help="Print the typed record as JSON."),
) -> None:
    """The VPP's performance record (warnings, suspension, deadline); record a remedy."""
    if ctx.invoked_subcommand is not None:
        return
    actx = app_context(ctx)
    b = actx.settings.bidding
    at = utcnow()
    if day is not None:
        tz = ZoneInfo(actx.settings.service.timezone)
        at = datetime.combine(_day(day, "--day"), time(23, 59, 59), tzinfo=tz)
    rec = performance_from_db(actx.engine(), b.programme, b.programmes_dir, at)
    if as_json:
        print(rec.model_dump_json(indent=2))
    else:
        _print(rec)
    if rec.refuses_bids:
        raise typer.Exit(1)


@app.command("remedy")
def remedy(
    ctx: typer.Context,
    on: str = typer.Option(..., "--date", help="Local date YYYY-MM-DD the remedy was done."),
    note: str = typer.Option(..., "--note", help="What was done (repairs, metering fixed)."),
    as_json: bool = typer.Option(False, "--json", help="Print the recorded remedy as JSON."),
) -> None:
    """Record the remedy of a suspension (the date it was done and what was done)."""
    actx = app_context(ctx)
    b = actx.settings.bidding
    try:
        body = RemedyIn(remedied_on=_day(on, "--date"), note=note)
    except pydantic.ValidationError as exc:
        raise ValidationError(describe_validation(exc, "remedy")) from None
    with session_scope(actx.engine()) as s:
        out = add_remedy(s, b.programme, b.programmes_dir, body, "cli", utcnow())
    if as_json:
        print(out.model_dump_json(indent=2))
    else:
        console.print(f"remedy {out.id} recorded for {out.remedied_on}: {out.note}",
                      highlight=False)
