"""``vpp ledger capacity --month 2026-07``: post the month's capacity payment to the ledger
(:mod:`bidding.capacity_ledger`, the function the daemon's settler calls) and show its credit,
total, fee and the owners' parts. Posting a month again writes nothing unless its settlements
changed (then the old version is reversed); ``--dry-run`` computes without posting; ``--pay``
also pays the owners what the ledger owes them for it and records the grid's payment
(:func:`bidding.capacity_ledger.pay_capacity`, ``record_capacity_receipt``). A month not yet
over, or a malformed month, is refused (exit 2).
"""

from __future__ import annotations

import typer
from rich.table import Table
from sqlmodel import select

from bidding.capacity_ledger import (
    compute_month,
    pay_capacity,
    post_capacity_payment,
    programme_timezone,
    record_capacity_receipt,
)
from bidding.ledger import check_ledger
from bidding.money import fmt_yuan
from vpp.cli.common import app_context, console
from vpp.db import session_scope
from vpp.errors import ValidationError
from vpp.models import Owner, utcnow

HELP = "The ledger: post a month's capacity payment."
app = typer.Typer(help=HELP, no_args_is_help=True)


@app.command()
def capacity(
    ctx: typer.Context,
    month: str = typer.Option(..., "--month", help="Local calendar month, e.g. 2026-07."),
    programme: str | None = typer.Option(None, "--programme",
                                         help="Programme (default: bidding.programme)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Compute and show; post nothing."),
    pay: bool = typer.Option(False, "--pay", help="Also pay the owners and record the grid's "
                             "payment in the ledger."),
) -> None:
    """Post the month's capacity payment (credit x price, split among owners) once."""
    if pay and dry_run:
        raise ValidationError("--pay and --dry-run exclude each other")
    actx = app_context(ctx)
    settings = actx.settings
    name = programme or settings.bidding.programme
    pdir = settings.bidding.programmes_dir
    with session_scope(actx.engine()) as s:
        payment = compute_month(s, name, pdir, month, settings.bidding.aggregator_fee_pct)
        state = "not posted (--dry-run)"
        if not dry_run:
            posted = post_capacity_payment(s, payment, now=utcnow(),
                                           tz=programme_timezone(name, pdir), actor="cli")
            check_ledger(s)
            if posted.created:
                state = f"posted v{posted.version}" + (
                    f", reverses v{posted.reversed_version}" if posted.reversed_version else "")
            elif posted.version:
                state = f"unchanged (v{posted.version} already posted)"
            else:
                state = "nothing to post (no settled event of the month verified capacity)"
            if pay and posted.version:
                paid = pay_capacity(s, name, month, actor="cli")
                got = record_capacity_receipt(s, name, month, actor="cli")
                check_ledger(s)
                state += (f"; paid owners {fmt_yuan(sum(paid.values()))} yuan, received from "
                          f"the grid {fmt_yuan(got)} yuan")
        names = {int(o.id or 0): o.name for o in s.exec(select(Owner))}
    t = Table("", "", title=f"Capacity payment {name} {month}: {state}", show_header=False)
    t.add_row("events", ", ".join(map(str, payment.event_ids)) or "none")
    t.add_row("credit", f"{float(payment.credit_kw):,.1f} kW (mean effective kW of the events)")
    t.add_row("price", f"{payment.price_yuan_per_kw_month} yuan/kW-month")
    t.add_row("total", f"{fmt_yuan(payment.total_fen)} yuan")
    t.add_row("aggregator fee", f"{fmt_yuan(payment.fee_fen)} yuan ({payment.fee_pct}%)")
    t.add_row("to owners", f"{fmt_yuan(payment.owners_fen)} yuan")
    console.print(t)
    ow = Table("owner", "credit kW", "payment", title="Owners")
    for oid, fen in payment.owners.items():
        ow.add_row(names.get(oid, str(oid)), f"{float(payment.owner_credit_kw[oid]):,.1f}",
                   fmt_yuan(fen))
    console.print(ow)
