"""Settlement reports: CSV, JSON, PNG charts and per-owner HTML statements.

Charts use matplotlib's Agg backend (files only). The event chart has two panels: load
(baseline, target = baseline - declared, metered) and response against the declared capacity
with the band's edges; every interval is drawn from its start to its end, in the local time of
the settlement's index. An owner statement is one self-contained HTML page (chart inlined) with
the owner's numbers: what they declared, delivered, earned or owe, and their ToU bill change.
"""

from __future__ import annotations

import base64
import csv
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bidding.money import fmt_yuan
from vpp.plotting import pyplot, save_figure

plt = pyplot()

_OWNER_COLUMNS = ["owner_id", "owner", "declared_kw", "baseline_kwh", "metered_kwh",
                  "response_kwh", "performance_ratio", "contribution_kwh", "shortfall_kwh",
                  "revenue_fen", "penalty_fen", "payout_fen", "tou_bill_change_fen"]


@dataclass(frozen=True)
class EventView:
    """What a report needs of one settled event (from a fresh result or a stored row)."""

    event_id: int
    external_id: str
    programme: str
    version: int
    direction: str
    start: str
    end: str
    summary: dict[str, Any]  # the EventSettlement dict without intervals/owners
    owners: list[dict[str, Any]]  # OwnerResult dicts + "owner" name
    intervals: pd.DataFrame  # indexed by interval_start


def view_from_detail(event_id: int, external_id: str, programme: str, version: int,
                     start: str, end: str, result: dict[str, Any],
                     names: dict[int, str]) -> EventView:
    frame = pd.DataFrame(result["intervals"])
    frame["interval_start"] = pd.to_datetime(frame["interval_start"])
    frame = frame.set_index("interval_start")
    owners = [{**o, "owner": names.get(int(o["owner_id"]), str(o["owner_id"]))}
              for o in result["owners"]]
    summary = {k: v for k, v in result.items() if k not in ("intervals", "owners")}
    return EventView(event_id, external_id, programme, version, result["direction"], start, end,
                     summary, owners, frame)


def _band_lines(ax: Any, declared: np.ndarray, x: Any, lower: float, upper: float) -> None:
    ax.step(x, declared, where="post", color="tab:orange", lw=2, label="declared")
    ax.fill_between(x, declared * lower, declared * upper, step="post", color="tab:orange",
                    alpha=0.15, label=f"band {lower:.0%}-{upper:.0%}")


def interval_edges(view: EventView, frame: pd.DataFrame) -> pd.DatetimeIndex:
    """The interval starts of ``frame`` and the end of its last interval, in local wall time
    (the zone the settlement's index carries; naive, so the chart's axis shows local time).

    A ``where="post"`` step over the starts alone would draw the last interval as a point:
    each series is plotted over these edges with its last value repeated (:func:`_post`)."""
    idx = pd.DatetimeIndex(frame.index)
    if len(idx) > 1:
        step = idx[1] - idx[0]
    else:  # one interval: the event's duration
        step = pd.Timedelta(hours=float(view.summary["duration_h"]))
    edges = idx.append(pd.DatetimeIndex([idx[-1] + step]))
    return edges.tz_localize(None) if edges.tz is not None else edges


def _post(values: Any) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return np.append(v, v[-1])


def event_figure(view: EventView, lower: float = 0.5, upper: float = 1.2,
                 owner: dict[str, Any] | None = None,
                 owner_frame: pd.DataFrame | None = None) -> Any:
    """The event chart (a matplotlib Figure): baseline, target, metered load; response vs
    declared with the band. Every interval is drawn to its end, the last one included."""
    frame = owner_frame if owner_frame is not None else view.intervals
    x = interval_edges(view, frame)
    sign = 1.0 if view.direction == "peak_shaving" else -1.0
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True,
                                 gridspec_kw={"height_ratios": [3, 2]})
    base = _post(frame["baseline_kw"])
    declared = _post(frame["declared_kw"])
    a1.step(x, base, where="post", label="baseline", color="tab:blue")
    target = np.where(declared > 0, base - sign * declared, np.nan)
    a1.step(x, target, where="post", label="target (baseline - declared)", color="tab:orange",
            ls="--")
    a1.step(x, _post(frame["metered_kw"]), where="post", label="metered", color="tab:green")
    a1.set_ylabel("load (kW)")
    who = owner["owner"] if owner else "VPP"
    a1.set_title(f"Event {view.external_id} ({view.start[:16]}) - {who}")
    a1.legend(loc="best", fontsize=8)
    _band_lines(a2, declared, x, lower, upper)
    a2.step(x, _post(frame["response_kw"]), where="post", color="tab:green", label="response")
    a2.axhline(0, color="grey", lw=0.5)
    a2.set_ylabel("response (kW)")
    a2.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def event_chart(view: EventView, path: Path, lower: float = 0.5, upper: float = 1.2,
                owner: dict[str, Any] | None = None, owner_frame: pd.DataFrame | None = None
                ) -> Path:
    """PNG of :func:`event_figure`."""
    return save_figure(event_figure(view, lower, upper, owner, owner_frame), path, dpi=90)


def write_event_files(view: EventView, out_dir: Path, lower: float, upper: float) -> list[Path]:
    """intervals CSV, owners CSV, settlement JSON and the chart for one event."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"event-{view.event_id}-v{view.version}"
    paths = []
    p = out_dir / f"{stem}-intervals.csv"
    view.intervals.to_csv(p)
    paths.append(p)
    p = out_dir / f"{stem}-owners.csv"
    write_owner_csv(p, view.owners)
    paths.append(p)
    p = out_dir / f"{stem}.json"
    p.write_text(json.dumps({
        "event_id": view.event_id, "external_id": view.external_id, "programme": view.programme,
        "version": view.version, "start": view.start, "end": view.end, "summary": view.summary,
        "owners": view.owners,
        "intervals": json.loads(view.intervals.reset_index().to_json(
            orient="records", date_format="iso")),
    }, indent=2, default=str))
    paths.append(p)
    paths.append(event_chart(view, out_dir / f"{stem}.png", lower, upper))
    return paths


def write_owner_csv(path: Path, owners: Sequence[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=_OWNER_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for o in owners:
            w.writerow(o)


def owner_statement(view: EventView, owner: dict[str, Any], out_dir: Path,
                    owner_frame: pd.DataFrame | None, lower: float, upper: float,
                    fee_pct: str) -> Path:
    """A self-contained HTML statement for one owner and event."""
    img = ""
    if owner_frame is not None:
        buf_path = out_dir / f".owner-{owner['owner_id']}-tmp.png"
        event_chart(view, buf_path, lower, upper, owner=owner, owner_frame=owner_frame)
        img = base64.b64encode(buf_path.read_bytes()).decode()
        buf_path.unlink()
    rows = [
        ("Declared capacity", f"{owner['declared_kw']:,.1f} kW"),
        ("Baseline energy in the event", f"{owner['baseline_kwh']:,.1f} kWh"),
        ("Metered energy in the event", f"{owner['metered_kwh']:,.1f} kWh"),
        ("Verified response", f"{owner['response_kwh']:,.1f} kWh "
                              f"({owner['performance_ratio']:.1%} of declared)"),
        ("Your share of the revenue", f"{fmt_yuan(owner['revenue_fen'])} yuan"),
        ("Your share of the penalty", f"{fmt_yuan(owner['penalty_fen'])} yuan"),
        ("Payout to you (after the aggregator fee of " + fee_pct + "%)",
         f"<b>{fmt_yuan(owner['payout_fen'])} yuan</b>"),
        ("Change in your own electricity bill (time-of-use)",
         f"{fmt_yuan(owner['tou_bill_change_fen'])} yuan (negative = saving)"),
    ]
    s = view.summary
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Settlement statement: {html.escape(owner['owner'])}, event {html.escape(view.external_id)}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}th{{text-align:left;
padding-right:2em}}td{{text-align:right}}table{{border-collapse:collapse}}
tr{{border-bottom:1px solid #ddd}}</style></head><body>
<h1>Demand-response settlement statement</h1>
<p><b>{html.escape(owner['owner'])}</b> (owner {owner['owner_id']})<br>
Event {html.escape(view.external_id)} ({html.escape(view.direction.replace('_', ' '))}),
{html.escape(view.start)} to {html.escape(view.end)}; programme {html.escape(view.programme)};
settlement version {view.version}.</p>
<table>{body}</table>
<h2>The whole VPP in this event</h2>
<p>Declared {s['declared_kw']:,.1f} kW; delivered {s['response_kwh']:,.1f} kWh
({s['performance_ratio']:.1%} of declared); revenue {fmt_yuan(s['revenue_fen'])} yuan, penalty
{fmt_yuan(s['penalty_fen'])} yuan, aggregator fee {fmt_yuan(s['fee_fen'])} yuan. Responses from
{lower:.0%} to {upper:.0%} of the declared capacity are paid (above, at {upper:.0%}); below
{lower:.0%} nothing is paid and a penalty applies, borne by owners who delivered less than their
share.</p>
{f'<img alt="load chart" src="data:image/png;base64,{img}">' if img else ''}
<p style="font-size:small">Baseline: {html.escape(str(owner.get('baseline_note', '')))}</p>
</body></html>"""
    path = out_dir / f"statement-event-{view.event_id}-v{view.version}-owner-{owner['owner_id']}.html"
    path.write_text(page)
    return path


def period_chart(events: Sequence[EventView], path: Path) -> Path:
    """Bar chart per event: revenue, penalty, fee (yuan)."""
    fig, ax = plt.subplots(figsize=(9, 4))
    labels = [e.external_id for e in events]
    x = np.arange(len(events))
    rev = [e.summary["revenue_fen"] / 100 for e in events]
    pen = [-e.summary["penalty_fen"] / 100 for e in events]
    fee = [e.summary["fee_fen"] / 100 for e in events]
    ax.bar(x - 0.25, rev, 0.25, label="revenue")
    ax.bar(x, pen, 0.25, label="penalty")
    ax.bar(x + 0.25, fee, 0.25, label="aggregator fee")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("yuan")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def owner_period_statement(period: str, owner_id: int, owner_name: str,
                           events: Sequence[EventView], out_dir: Path,
                           capacity_fen: int | None = None) -> Path:
    """A monthly HTML statement for one owner: every settled event and the totals, and the
    month's capacity payment to the owner (``capacity_fen``; None: not posted) with the month's
    total earnings (event payouts + capacity)."""
    rows = []
    response_kwh = 0.0
    tot = {"revenue_fen": 0, "penalty_fen": 0, "payout_fen": 0, "tou_bill_change_fen": 0}
    for v in events:
        o = next((x for x in v.owners if int(x["owner_id"]) == owner_id), None)
        if o is None:
            continue
        response_kwh += o["response_kwh"]
        for k in tot:
            tot[k] += int(o[k])
        rows.append(
            f"<tr><td>{html.escape(v.external_id)}</td><td>{html.escape(v.start[:16])}</td>"
            f"<td>v{v.version}</td><td>{o['declared_kw']:,.1f}</td>"
            f"<td>{o['response_kwh']:,.1f}</td><td>{o['performance_ratio']:.1%}</td>"
            f"<td>{fmt_yuan(o['revenue_fen'])}</td><td>{fmt_yuan(o['penalty_fen'])}</td>"
            f"<td>{fmt_yuan(o['payout_fen'])}</td><td>{fmt_yuan(o['tou_bill_change_fen'])}</td></tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Demand-response statement {html.escape(period)}: {html.escape(owner_name)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}td,th{{padding:0 .7em;
text-align:right}}table{{border-collapse:collapse}}tr{{border-bottom:1px solid #ddd}}</style>
</head><body><h1>Demand-response statement, {html.escape(period)}</h1>
<p><b>{html.escape(owner_name)}</b> (owner {owner_id}). Amounts in yuan; a negative payout is
a penalty you owe; the ToU bill change is on your own electricity bill (negative = saving).</p>
<table><tr><th>event</th><th>start</th><th>version</th><th>declared kW</th>
<th>response kWh</th><th>of declared</th><th>revenue share</th><th>penalty share</th>
<th>payout</th><th>ToU bill change</th></tr>{''.join(rows)}
<tr><th colspan="4">total</th><th>{response_kwh:,.1f}</th><th></th>
<th>{fmt_yuan(tot['revenue_fen'])}</th><th>{fmt_yuan(tot['penalty_fen'])}</th>
<th>{fmt_yuan(tot['payout_fen'])}</th><th>{fmt_yuan(tot['tou_bill_change_fen'])}</th></tr>
</table>{_capacity_lines(capacity_fen, tot['payout_fen'])}</body></html>"""
    path = out_dir / f"statement-{period}-owner-{owner_id}.html"
    path.write_text(page)
    return path


def _capacity_lines(capacity_fen: int | None, payouts_fen: int) -> str:
    """The statement's capacity payment and the month's total (HTML; empty when not posted)."""
    if capacity_fen is None:
        return ("<p>Monthly capacity payment: not posted yet (it is posted after the month "
                "ends).</p>")
    return (f"<p>Monthly capacity payment (your part of the capacity the month's events "
            f"verified): <b>{fmt_yuan(capacity_fen)}</b></p><p>Total for the month (event "
            f"payouts + capacity payment): <b>{fmt_yuan(payouts_fen + capacity_fen)}</b></p>")
