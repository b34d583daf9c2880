"""``vpp admission``: the VPP's admission check under its programme (:mod:`bidding.admission`).

Prints what the fleet measures (adjustable capacity down and up, continuous response, normal
load and share) and each rule's verdict and margin, or with ``--json`` the typed result
(the same document as ``GET /api/v1/admission``). Exits 1 when a rule fails or cannot be
checked, 2 on bad input.
"""

from __future__ import annotations

from datetime import date

import typer
from rich.table import Table

from bidding.bid_inputs import BID_HISTORY_DAYS
from vpp.admission import admission_from_db
from vpp.cli.common import app_context, console
from vpp.domain.admission import (
    MAX_ADMISSION_HISTORY_DAYS,
    MIN_ADMISSION_HISTORY_DAYS,
    AdmissionResult,
    RuleCheck,
)
from vpp.errors import ValidationError

_STATUS = {"pass": "[green]pass[/green]", "fail": "[red]FAIL[/red]",
           "unknown": "[yellow]unknown[/yellow]", "not_applicable": "n/a"}


def _num(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "kW":
        return f"{v:,.1f} kW"
    return f"{v:.2f}%" if unit == "%" else f"{v:g} {unit}"


def _margin(r: RuleCheck) -> str:
    if r.margin is None:
        return "-"
    return ("+" if r.margin >= 0 else "") + _num(r.margin, r.unit)


def _measures(res: AdmissionResult) -> Table:
    t = Table("", "", show_header=False, title=(
        f"Admission of a {res.vpp_type.value}-type VPP under {res.programme} (version of "
        f"{res.programme_version}), window {res.window_start:%Y-%m-%d %H:%M}-"
        f"{res.window_end:%H:%M}"))
    rows = [
        ("adjustable capacity", f"{res.adjustable_kw:,.1f} kW = down {res.down_kw:,.1f} + "
                                f"up {res.up_kw:,.1f} (held one {res.interval_minutes}-min interval)"),
        ("continuous response", f"{'at least ' if res.duration_capped else ''}"
                                f"{res.duration_h:g} h at {res.duration_at_kw:,.0f} kW"),
        ("normal load", "-" if res.normal_load_kw is None else f"{res.normal_load_kw:,.1f} kW"),
        ("share of normal load", "-" if res.share_pct is None else f"{res.share_pct:.2f}%"),
        ("devices", f"{res.devices_counted} counted" + "".join(
            f"; {n} not: {why}" for why, n in sorted(res.devices_excluded.items()))),
        ("capacity from", res.capacity_basis),
    ]
    for k, v in rows:
        t.add_row(k, v)
    return t


def _rules(res: AdmissionResult) -> Table:
    t = Table("rule", "required", "measured", "verdict", "margin", "figure", "note",
              title="Rules: " + ("[green]admitted[/green]" if res.admitted
                                 else "[red]not admitted[/red]"))
    for r in res.rules:
        t.add_row(r.name, _num(r.required, r.unit), _num(r.measured, r.unit),
                  _STATUS[r.status.value], _margin(r),
                  f"{r.key} ({'VERIFIED' if r.verified else 'unverified'})", r.note)
    return t


def admission(
    ctx: typer.Context,
    day: str | None = typer.Option(None, "--day", help="Reference day YYYY-MM-DD (default: "
                                   "today in the programme's zone); history is the days before."),
    window: str | None = typer.Option(None, "--window", help="Clock window HH:MM-HH:MM on the "
                                      "day (default: the programme's peak-shaving window)."),
    history_days: int = typer.Option(BID_HISTORY_DAYS, "--history-days", help="Days of "
                                     "metered history before the day to take the load from."),
    as_json: bool = typer.Option(False, "--json", help="Print the typed result as JSON."),
) -> None:
    """Check the VPP against its programme's admission rules (capacity, duration, share)."""
    actx = app_context(ctx)
    try:
        ref = date.fromisoformat(day) if day is not None else None
    except ValueError:
        raise ValidationError(f"--day must be YYYY-MM-DD, got {day!r}") from None
    if not MIN_ADMISSION_HISTORY_DAYS <= history_days <= MAX_ADMISSION_HISTORY_DAYS:
        raise ValidationError(f"--history-days must be {MIN_ADMISSION_HISTORY_DAYS}.."
                              f"{MAX_ADMISSION_HISTORY_DAYS}, got {history_days}")
    res = admission_from_db(actx.engine(), actx.settings, day=ref, window=window,
                            history_days=history_days)
    if as_json:
        print(res.model_dump_json(indent=2))
    else:
        console.print(_measures(res))
        for o in res.owners:
            load = "-" if o.normal_load_kw is None else f"{o.normal_load_kw:,.1f} kW"
            console.print(f"  owner {o.owner_id}: normal load {load} ({o.basis})",
                          highlight=False)
        console.print(_rules(res))
        for r in res.rules:
            console.print(f"  {r.name}: {r.source}", highlight=False, soft_wrap=True)
    if not res.admitted:
        raise typer.Exit(1)
