"""``vpp bid``, ``vpp settle``, ``vpp report`` and ``vpp settle-demo``: offers, settlement, reports.

``vpp settle --event ID`` settles a finished event by the daemon's own path
(:func:`vpp.daemon.settle.settle_event_db`: the programme's baseline from metered history, else
the baselines fixed at the event's first plan); an event already settled (by the daemon or an
earlier run) is shown as stored, never settled twice, unless ``--resettle`` (corrected readings:
a new version by the same method, the old one reversed). It prints the result and writes
CSV/JSON, a PNG chart and one HTML statement per owner. ``vpp report --period 2025-07`` does the same for a month from
the stored settlements, with per-owner totals and the portfolio's capability per season.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import Engine
from sqlmodel import select

from bidding import report as rpt
from bidding.capability import portfolio_capability
from bidding.capacity_ledger import month_capacity
from bidding.ledger import check_ledger, current_settlement, pay_owners, record_grid_receipt
from bidding.money import fmt_yuan
from bidding.programme import Programme, load_programme
from bidding.workflow import bid_event, get_event
from forecasting.calendars import make_calendar
from vpp.cli.common import app_context, console
from vpp.daemon.settle import FIXED, SettleRun, method_of, settle_event_db
from vpp.daemon.settle import rebound_hours as settle_rebound_hours
from vpp.db import make_engine, session_scope, upgrade
from vpp.domain.grid_calls import OPEN_EVENT_STATUSES, EventStatus
from vpp.errors import ValidationError
from vpp.models import Device, GridEvent, Owner, Settlement, utcnow

OUT_HELP = "Directory for the CSV, JSON, PNG and HTML files."


def _summary_table(title: str, s: dict, extra: Sequence[tuple[str, str]] = ()) -> Table:
    t = Table("", "", title=title, show_header=False)
    for k, v in [
        *extra,
        ("declared", f"{s['declared_kw']:,.1f} kW for {s['duration_h']:g} h"),
        ("baseline / metered", f"{s['baseline_kwh']:,.1f} / {s['metered_kwh']:,.1f} kWh"),
        ("response", f"{s['response_kwh']:,.1f} kWh = {s['performance_ratio']:.1%} of declared"),
        ("paid energy", f"{s['paid_kwh']:,.1f} kWh at {s['price_yuan_per_kwh']} yuan/kWh"),
        ("revenue", f"{fmt_yuan(s['revenue_fen'])} yuan"),
        ("penalty", f"{fmt_yuan(s['penalty_fen'])} yuan"),
        ("aggregator fee", f"{fmt_yuan(s['fee_fen'])} yuan ({s['fee_pct']}%)"),
        ("to owners", f"{fmt_yuan(s['net_fen'] - s['fee_fen'])} yuan"),
    ]:
        t.add_row(k, v)
    return t


def _owner_table(title: str, owners: list[dict]) -> Table:
    t = Table("owner", "declared kW", "response kWh", "ratio", "revenue", "penalty", "payout",
              "ToU bill change", title=title)
    for o in owners:
        t.add_row(o["owner"], f"{o['declared_kw']:,.1f}", f"{o['response_kwh']:,.1f}",
                  f"{o['performance_ratio']:.1%}", fmt_yuan(o["revenue_fen"]),
                  fmt_yuan(o["penalty_fen"]), fmt_yuan(o["payout_fen"]),
                  fmt_yuan(o["tou_bill_change_fen"]))
    return t


def _baseline_notes(run: SettleRun) -> dict[int, str]:
    """Per owner, how the baseline of the settlement was made (for the statements)."""
    if run.outcome is not None:
        return {o: b.explanation for o, b in run.outcome.baselines.items()}
    detail = run.settlement.detail
    owners = [int(o["owner_id"]) for o in detail["result"]["owners"]]
    if method_of(run.settlement) == FIXED:
        counts = detail.get("baseline_methods") or {}  # method -> devices
        note = "fixed at the event's first plan, per device" + (
            " (" + ", ".join(f"{m}: {n} devices" for m, n in sorted(counts.items())) + ")"
            if counts else "")
        return dict.fromkeys(owners, note)
    return {o: f"{b['method']} over {', '.join(b['days_used'])}"
            for o, b in ((int(k), v) for k, v in (detail.get("baselines") or {}).items())}


def _view(engine: Engine, ev: GridEvent, run: SettleRun, tz: ZoneInfo) -> rpt.EventView:
    with session_scope(engine) as s:
        names = {int(o.id or 0): o.name for o in s.exec(select(Owner))}
    assert ev.id is not None
    view = rpt.view_from_detail(
        ev.id, ev.external_id, ev.programme, run.settlement.version,
        ev.start.astimezone(tz).isoformat(), ev.end.astimezone(tz).isoformat(),
        run.settlement.detail["result"], names)
    notes = _baseline_notes(run)
    for o in view.owners:
        o["baseline_note"] = notes.get(int(o["owner_id"]), "")
    return view


def _write_view(view: rpt.EventView, run: SettleRun, out_dir: Path, programme: Programme
                ) -> list[Path]:
    band = programme.band
    lower, upper = float(band.lower_pct) / 100, float(band.upper_pct) / 100
    frames = run.outcome.owner_frames if run.outcome is not None else {}
    paths = rpt.write_event_files(view, out_dir, lower, upper)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("owner statements", total=len(view.owners))
        for o in view.owners:
            paths.append(rpt.owner_statement(
                view, o, out_dir, frames.get(int(o["owner_id"])), lower, upper,
                str(view.summary["fee_pct"])))
            progress.advance(task)
    return paths


def bid(
    ctx: typer.Context,
    event: int = typer.Option(..., "--event", help="Event id."),
    price: str | None = typer.Option(None, help="Bid price in yuan/kWh (default: the "
                                     "programme's fixed price or cap)."),
) -> None:
    """Build and store the VPP's offer for an event (programme rules, caps and minimums)."""
    actx = app_context(ctx)
    settings = actx.settings
    try:
        p = Decimal(price) if price is not None else None
    except ArithmeticError:
        raise ValidationError(f"--price must be a number, got {price!r}") from None
    row, offer = bid_event(actx.engine(), event, settings.bidding.programmes_dir,
                           price_yuan_per_kwh=p,
                           confidence=settings.bidding.delivery_confidence,
                           calendar=make_calendar(settings.forecasting.calendar))
    t = Table("owner", "declared kW", "share", "expected kW", "P(penalty)", "limited by",
              title=f"Bid {row.id} for event {event}: {offer.declared_kw:,.1f} kW at "
                    f"{offer.price_yuan_per_kwh} yuan/kWh")
    for o in offer.owners:
        t.add_row(str(o.owner_id), f"{o.declared_kw:,.1f}", f"{offer.shares[o.owner_id]:.1%}",
                  f"{o.expected_response_kw:,.1f}", f"{o.p_penalty:.1%}", o.limited_by)
    console.print(t)


def settle(
    ctx: typer.Context,
    event: int = typer.Option(..., "--event", help="Event id."),
    out: Path = typer.Option(Path("reports"), help=OUT_HELP),
    pay: bool = typer.Option(False, "--pay", help="Also pay the owners and record the grid's "
                             "payment in the ledger."),
    rebound_hours: float = typer.Option(2.0, min=0, help="At most this many hours after the "
                                        "event counted in the owners' ToU bill change."),
    resettle: bool = typer.Option(False, "--resettle", help="Settle an event already settled "
                                  "again, by the method its settlement used (after corrected "
                                  "readings; unchanged data writes nothing)."),
) -> None:
    """Settle a finished event the way the daemon does, or show its stored settlement."""
    actx = app_context(ctx)
    settings = actx.settings
    engine = actx.engine()
    with session_scope(engine) as s:
        ev = get_event(s, event)
    if ev.status in OPEN_EVENT_STATUSES:
        raise ValidationError(f"event {event} is {ev.status}: it is settled after it ends")
    if ev.status == EventStatus.REJECTED:
        raise ValidationError(f"event {event} was rejected: there is nothing to settle")
    elapsed_min = (utcnow() - ev.end).total_seconds() / 60
    run = settle_event_db(
        engine, event, settings, actor="cli", resettle=resettle,
        rebound_h=settle_rebound_hours(elapsed_min, settings.service.market_interval_minutes,
                                       rebound_hours))
    programme = load_programme(ev.programme, settings.bidding.programmes_dir, ev.start)
    view = _view(engine, ev, run, ZoneInfo(programme.timezone))
    _print_run(run, view, programme, ev)
    if pay:
        with session_scope(engine) as s:
            paid = pay_owners(s, event)
            got = record_grid_receipt(s, event)
            check_ledger(s)
        console.print(f"paid owners {fmt_yuan(sum(paid.values()))} yuan; "
                      f"received from the grid {fmt_yuan(got)} yuan", highlight=False)
    paths = _write_view(view, run, out / f"event-{event}", programme)
    console.print(f"wrote {len(paths)} files to {out / f'event-{event}'}", highlight=False)


def _print_run(run: SettleRun, view: rpt.EventView, programme: Programme, ev: GridEvent) -> None:
    if run.created:
        state = "new version" + (f", reverses v{run.reversed_version}"
                                 if run.reversed_version else "")
    else:
        state = "unchanged (already settled)"
    baseline = ("baselines fixed at the event's first plan" if run.method == FIXED
                else "the programme's baseline from metered history")
    console.print(_summary_table(
        f"Event {ev.external_id} settlement v{run.settlement.version} ({state})", view.summary,
        [("programme", f"{programme.name} (version of {programme.effective_from})"),
         ("direction", ev.direction), ("baseline", baseline)]))
    console.print(_owner_table("Owners", view.owners))


def _month(period: str, tz: str) -> tuple[datetime, datetime]:
    try:
        first = datetime.strptime(period, "%Y-%m").replace(tzinfo=ZoneInfo(tz))
    except ValueError:
        raise ValidationError(f"--period must look like 2025-07, got {period!r}") from None
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt


def report(
    ctx: typer.Context,
    period: str = typer.Option(..., "--period", help="Month, e.g. 2025-07."),
    out: Path = typer.Option(Path("reports"), help=OUT_HELP),
) -> None:
    """Monthly report: every settled event (current version), owners' totals, capability."""
    actx = app_context(ctx)
    settings = actx.settings
    tz = settings.service.timezone
    first, nxt = _month(period, tz)
    engine = actx.engine()
    views: list[rpt.EventView] = []
    with session_scope(engine) as s:
        names = {int(o.id or 0): o.name for o in s.exec(select(Owner))}
        events = s.exec(select(GridEvent).where(GridEvent.start >= first, GridEvent.start < nxt)
                        .order_by(GridEvent.start)).all()  # type: ignore[arg-type]
        for ev in events:
            assert ev.id is not None
            st: Settlement | None = current_settlement(s, ev.id)
            if st is None:
                continue
            views.append(rpt.view_from_detail(
                ev.id, ev.external_id, ev.programme, st.version,
                ev.start.astimezone(ZoneInfo(tz)).isoformat(),
                ev.end.astimezone(ZoneInfo(tz)).isoformat(), st.detail["result"], names))
        devices = s.exec(select(Device)).all()
        capacity = month_capacity(s, period)
    out_dir = out / f"period-{period}"
    out_dir.mkdir(parents=True, exist_ok=True)
    ev_table = Table("event", "start", "version", "declared kW", "response kWh", "ratio",
                     "revenue", "penalty", "fee", title=f"Settled events {period}")
    totals: dict[int, dict] = {}
    for v in views:
        s_ = v.summary
        ev_table.add_row(v.external_id, v.start[:16], str(v.version), f"{s_['declared_kw']:,.1f}",
                         f"{s_['response_kwh']:,.1f}", f"{s_['performance_ratio']:.1%}",
                         fmt_yuan(s_["revenue_fen"]), fmt_yuan(s_["penalty_fen"]),
                         fmt_yuan(s_["fee_fen"]))
        for o in v.owners:
            t = totals.setdefault(int(o["owner_id"]), {
                "owner_id": o["owner_id"], "owner": o["owner"], "events": 0, "response_kwh": 0.0,
                "revenue_fen": 0, "penalty_fen": 0, "payout_fen": 0, "tou_bill_change_fen": 0})
            t["events"] += 1
            t["response_kwh"] += o["response_kwh"]
            for k in ("revenue_fen", "penalty_fen", "payout_fen", "tou_bill_change_fen"):
                t[k] += o[k]
    console.print(ev_table)
    for oid, t in totals.items():  # the month's capacity payment, once posted (else empty)
        t["capacity_fen"] = "" if capacity is None else capacity.get(oid, 0)
    ow = Table("owner", "events", "response kWh", "revenue", "penalty", "payout",
               "ToU bill change", "capacity payment", title=f"Owners {period}")
    for t in totals.values():
        ow.add_row(t["owner"], str(t["events"]), f"{t['response_kwh']:,.1f}",
                   fmt_yuan(t["revenue_fen"]), fmt_yuan(t["penalty_fen"]),
                   fmt_yuan(t["payout_fen"]), fmt_yuan(t["tou_bill_change_fen"]),
                   "not posted" if capacity is None else fmt_yuan(t["capacity_fen"]))
    console.print(ow)
    cap = portfolio_capability(devices, settings.city.system_peak_mw, settings.city.dr_goal_pct)
    ct = Table("season", "capability MW", "share of peak", "goal", "met",
               title=f"DR capability vs {settings.city.name} peak "
                     f"{settings.city.system_peak_mw:,.0f} MW")
    for c in cap:
        ct.add_row(c.season, f"{c.capability_kw / 1000:,.2f}", f"{c.share_of_peak_pct:.2f}%",
                   f"{c.goal_pct:g}% ({c.goal_kw / 1000:,.0f} MW)", "yes" if c.meets_goal else "no")
    console.print(ct)
    _write_period(out_dir, period, views, list(totals.values()), cap)
    for oid, t in totals.items():
        rpt.owner_period_statement(period, oid, t["owner"], views, out_dir,
                                   None if capacity is None else capacity.get(oid, 0))
    console.print(f"wrote the report to {out_dir}", highlight=False)


def _write_period(out_dir: Path, period: str, views: list[rpt.EventView], owners: list[dict],
                  cap: list) -> None:
    import csv

    with (out_dir / f"period-{period}-events.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["event_id", "external_id", "start", "version", "declared_kw", "response_kwh",
                    "performance_ratio", "revenue_fen", "penalty_fen", "fee_fen", "net_fen"])
        for v in views:
            s = v.summary
            w.writerow([v.event_id, v.external_id, v.start, v.version, s["declared_kw"],
                        s["response_kwh"], s["performance_ratio"], s["revenue_fen"],
                        s["penalty_fen"], s["fee_fen"], s["net_fen"]])
    with (out_dir / f"period-{period}-owners.csv").open("w", newline="") as fh:
        w2 = csv.DictWriter(fh, fieldnames=["owner_id", "owner", "events", "response_kwh",
                                            "revenue_fen", "penalty_fen", "payout_fen",
                                            "tou_bill_change_fen", "capacity_fen"])
        w2.writeheader()
        w2.writerows(owners)
    (out_dir / f"period-{period}.json").write_text(json.dumps({
        "period": period,
        "events": [{"event_id": v.event_id, "external_id": v.external_id, "version": v.version,
                    "start": v.start, **v.summary} for v in views],
        "owners": owners,
        "capability": [{"season": c.season, "capability_kw": c.capability_kw,
                        "share_of_peak_pct": c.share_of_peak_pct, "goal_pct": c.goal_pct,
                        "by_kind_kw": c.by_kind_kw} for c in cap],
    }, indent=2, default=str))
    if views:
        rpt.period_chart(views, out_dir / f"period-{period}.png")
        for v in views:
            rpt.event_chart(v, out_dir / f"event-{v.event_id}-v{v.version}.png")


def settle_demo(
    ctx: typer.Context,
    out: Path = typer.Option(Path("reports/demo"), help=OUT_HELP),
) -> None:
    """Run one grid call end to end on a fresh SQLite file through the daemon's own parts
    (intake and bid, planner, dispatch to simulated Modbus devices, delivery watch, settlement;
    :mod:`sim.event_demo`, on a manual clock), then pay, show and report it."""
    import asyncio

    from sim.event_demo import run_demo_event

    settings = app_context(ctx).settings
    db_path = settings.service.data_dir / "settle-demo.sqlite3"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{db_path.as_posix()}")
    upgrade(engine)
    start = datetime(2025, 7, 15, 19, 0, tzinfo=ZoneInfo(settings.service.timezone))
    with console.status("simulating the call through the daemon (about 10 s)"):
        run = asyncio.run(run_demo_event(settings, engine, start, hours=2.0,
                                         external_id="HN-2025-07-15-A"))
    d = run.decision
    if not d.accepted:
        raise ValidationError(f"the demo call was declined: {d.reason}")
    console.print(f"call {d.external_id}: {d.declared_kw:,.0f} kW declared at "
                  f"{d.price_yuan_per_kwh} yuan/kWh; the daemon dispatched "
                  f"{run.setpoints_written} setpoints to the simulated devices in "
                  f"{run.steps} steps; event {run.status}", highlight=False)
    ctx.find_root().obj._engine = engine  # the commands below use this database
    settle(ctx, event=run.event_id, out=out, pay=True, rebound_hours=2.0, resettle=False)
    report(ctx, period="2025-07", out=out)
