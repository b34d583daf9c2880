"""The season report: a markdown page with PNG charts (matplotlib, Agg) and a JSON summary.

Written for a reader who did not run the simulation: the headline first (capability and delivered
response as shares of the system peak against the city's 5% goal), then how the numbers were
made, then per event: requested, declared and delivered MW, performance ratio against the
programme's band, baseline error, money (revenue, penalty, aggregator fee, owner payouts) and
comfort / state-of-charge violations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sim.metrics import season_summary, valley_summary  # noqa: E402
from sim.results import EventOutcome, SeasonResult, fault_totals  # noqa: E402


def _yuan(fen: float) -> str:
    return f"{fen / 100:,.0f}"


def _peak(result: SeasonResult) -> list[EventOutcome]:
    """The peak-shaving events (calls and capability tests): the charts against the goal."""
    return [e for e in result.events if e.call.direction == "peak_shaving"]


def _chart_events(result: SeasonResult, path: Path) -> None:
    ev = _peak(result)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    x = np.arange(len(ev))
    w = 0.27
    ax.bar(x - w, [e.call.requested_kw / 1000 for e in ev], w, label="requested", color="#9aa5b1")
    ax.bar(x, [e.declared_kw / 1000 for e in ev], w, label="declared", color="#3b82f6")
    ax.bar(x + w, [e.delivered_kw / 1000 for e in ev], w, label="delivered", color="#10b981")
    goal = result.system_peak_mw * result.goal_pct / 100
    ax.axhline(goal, color="#dc2626", ls="--", label=f"{result.goal_pct:g}% goal ({goal:.0f} MW)")
    ax.set_xticks(x, [f"{e.call.day:%m-%d}{'*' if e.call.event_type == 'real_time' else ''}"
                      for e in ev], rotation=60, fontsize=8)
    ax.set_ylabel("MW")
    ax.set_title("Per event: requested, declared and delivered response (* = real-time call)")
    ax.legend(fontsize=8, ncols=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _chart_season(result: SeasonResult, path: Path) -> None:
    daily = result.city_load_mw.groupby(result.city_load_mw.index.date).max()
    fig, ax = plt.subplots(figsize=(11, 3.8))
    ax.plot(list(daily.index), daily.to_numpy(), color="#334155", lw=1, label="city daily peak")
    for e in result.events:
        ax.axvline(mdates.date2num(e.call.day), alpha=0.5, lw=1,
                   color="#10b981" if e.call.sign < 0 else "#f59e0b"
                   if e.call.event_type == "real_time" else "#3b82f6")
    ax.axhline(result.system_peak_mw, color="#dc2626", ls=":", lw=1,
               label=f"system peak {result.system_peak_mw:,.0f} MW")
    ax.set_ylabel("MW")
    ax.set_title("City daily peak over the simulated days; vertical lines = calls "
                 "(green: valley filling)")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _chart_event_profile(result: SeasonResult, e: EventOutcome, path: Path) -> None:
    day = e.call.day
    fl = result.fleet_load_mw[result.fleet_load_mw.index.date == day]
    fig, ax = plt.subplots(figsize=(11, 3.8))
    if len(fl):
        ax.plot(fl.index, fl.to_numpy(), color="#334155", lw=1, label="fleet metered (day)")
    ax.step(e.index, e.baseline_kw / 1000, where="post", color="#3b82f6", label="baseline")
    ax.step(e.index, e.metered_kw / 1000, where="post", color="#10b981", label="metered")
    ax.axvspan(mdates.date2num(e.call.start), mdates.date2num(e.call.end),
               color="#fde68a", alpha=0.4, label="event")
    ax.set_ylabel("MW")
    ax.set_title(f"{e.call.external_id}: fleet load, baseline and metered")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _chart_ratio(result: SeasonResult, path: Path) -> None:
    ev = _peak(result)
    r = [100 * e.performance_ratio for e in ev]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(r, bins=min(20, max(5, len(r))), color="#3b82f6")
    if ev:
        ax.axvspan(ev[0].band_lower_pct, ev[0].band_upper_pct, color="#bbf7d0", alpha=0.5,
                   label=f"paid band {ev[0].band_lower_pct:g}-{ev[0].band_upper_pct:g}%")
    ax.set_xlabel("performance ratio (delivered / declared, %)")
    ax.set_ylabel("events")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label(e: EventOutcome) -> str:
    return (f"{e.call.day:%m-%d}{'*' if e.call.event_type == 'real_time' else ''}"
            f"{' TEST' if e.call.test else ''}")


def _chart_measures(result: SeasonResult, path: Path) -> None:
    """Per call: uncapped offer, declared, metered, credited and physical response (MW)."""
    ev = [e for e in _peak(result) if e.measures is not None]
    fig, (ax, rb) = plt.subplots(2, 1, figsize=(11, 7), height_ratios=[2, 1], sharex=True)
    x = np.arange(len(ev))
    bars = [("uncapped offer", lambda e: e.measures.uncapped_offer_kw, "#c4b5fd"),
            ("declared", lambda e: e.declared_kw, "#3b82f6"),
            ("delivered (metered)", lambda e: e.delivered_kw, "#9ca3af"),
            ("credited (band cap, export rule)", lambda e: e.measures.credited_kw, "#10b981"),
            ("physical (vs no-dispatch twin)", lambda e: e.measures.physical_kw, "#f59e0b")]
    w = 0.8 / len(bars)
    for k, (name, f, c) in enumerate(bars):
        ax.bar(x + (k - 2) * w, [f(e) / 1000 for e in ev], w, label=name, color=c)
    goal = result.system_peak_mw * result.goal_pct / 100
    ax.axhline(goal, color="#dc2626", ls="--", label=f"{result.goal_pct:g}% goal ({goal:.0f} MW)")
    ax.set_ylabel("MW")
    ax.set_title("Per call (* real-time, TEST capability test): what the plan's question needs")
    ax.legend(fontsize=7, ncols=3)
    ms = [e.measures for e in ev if e.measures is not None]
    rb.bar(x, [m.rebound_kwh / 1000 for m in ms],
           color=["#dc2626" if m.rebound_flag else "#64748b" for m in ms])
    rb.axhline(0, color="#334155", lw=0.5)
    rb.set_ylabel("rebound MWh")
    rb.set_title("Rebound over 2 h after the call (metered - twin); red: post-call peak above "
                 "the participants' load in the city's peak hour", fontsize=9)
    rb.set_xticks(x, [_label(e) for e in ev], rotation=60, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mw(v: float | None, pct: float | None = None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.1f}" + ("" if pct is None else f" ({pct:.2f}%)")


def _season_lines(result: SeasonResult) -> list[str]:
    """The plan's question per season: a table of the season's calls, then the tests."""
    by = season_summary(result.events, result.system_peak_mw)
    if not by:
        return []
    rows = [("calls (capability tests apart)", lambda r: str(r["calls"])),
            ("requested MW, mean", lambda r: _mw(r["requested_mw_mean"])),
            ("declared MW, median", lambda r: _mw(r["declared_mw_median"])),
            ("uncapped offer MW, median", lambda r: _mw(r["uncapped_offer_mw_median"],
                                                        r["uncapped_offer_pct_median"])),
            ("uncapped offer MW, P10", lambda r: _mw(r["uncapped_offer_mw_p10"])),
            ("delivered MW (settlement baseline - metered), mean",
             lambda r: _mw(r["delivered_metered_mw_mean"])),
            ("credited MW (paid: band cap, export rule), mean",
             lambda r: _mw(r["credited_mw_mean"], r["credited_pct_mean"])),
            ("physical MW (no-dispatch twin - metered), mean",
             lambda r: _mw(r["physical_mw_mean"], r["physical_pct_mean"])),
            ("baseline error on the call day MW (baseline - twin), mean",
             lambda r: _mw(r["baseline_error_call_day_mw_mean"])),
            ("rebound MWh over 2 h after, mean", lambda r: _mw(r["rebound_mwh_mean"])),
            ("calls with a post-call peak above the peak hour", lambda r: str(r["rebound_flagged"])),
            ("calls in the paid band", lambda r: str(r["in_band"]))]
    seasons = sorted(by)
    lines = ["## The plan's question, by season", "",
             "Shares are of the system peak. The uncapped offer is what the offer rule declared "
             "before the cap at the request; credited is the settlement's paid energy over the "
             "call's duration (nothing past the band's upper limit; a metering point's export "
             "past its own load only where the programme counts it); physical is measured "
             "against a no-dispatch twin (the same devices, weather and behaviour without "
             "setpoints), which only a simulator has.", "",
             "| measure | " + " | ".join(seasons) + " |", "|---|" + "---:|" * len(seasons)]
    lines += [f"| {name} | " + " | ".join(f(by[k]) for k in seasons) + " |" for name, f in rows]
    tests = [(k, t) for k in seasons for t in by[k]["capability_tests"]]
    if tests:
        lines += ["", "**Capability tests** (the goal, 5% of the annual peak, asked in each "
                  "season's peak hour on its highest-forecast working day; MW, rebound MWh):",
                  "", "| season | call | requested | declared | uncapped offer | delivered | "
                  "credited | physical | baseline error | rebound | flag | notes |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        for k, t in tests:
            def mw(key: str, t: dict[str, Any] = t) -> str:
                v = t.get(key)
                return "n/a" if v is None else f"{v / 1000:.1f}"
            lines.append(
                f"| {k} | {t['id']} | {t['requested_mw']:.1f} | {t['declared_mw']:.1f} | "
                f"{mw('uncapped_offer_kw')} | {t['delivered_metered_mw']:.1f} | "
                f"{mw('credited_kw')} | {mw('physical_kw')} | {mw('baseline_error_kw')} | "
                f"{mw('rebound_kwh')} | {'REBOUND' if t.get('rebound_flag') else '-'} | "
                f"{'; '.join(t['notes'])} |")
    return lines + [""]


def _capacity_text(result: SeasonResult) -> str:
    """The months' capacity payments (bidding.capacity), as a sentence for the money line."""
    if not result.capacity:
        return ""
    months = "; ".join(f"{c.month} {float(c.credit_kw) / 1000:,.1f} MW verified by "
                       f"{len(c.event_ids)} calls, {_yuan(c.total_fen)} yuan"
                       for c in result.capacity)
    return (f" Monthly capacity payments (the capacity the month's calls verified x the "
            f"programme's price): {months}.")


def _valley_lines(result: SeasonResult) -> list[str]:
    """Valley filling, apart from the peak-shaving headline: counts, MW and money."""
    v = valley_summary(result.events)
    if not v["calls"]:
        return []
    lines = [
        "## Valley filling", "",
        "Calls that ask the fleet to raise its load (the grid operator's valley-filling rules "
        "in the scenario file), through the same intake, offer, plan, dispatch and settlement "
        "as peak shaving. Delivered is the rise: metered - settlement baseline over the window. "
        "Not part of the headline (the goal is a share of the peak); no capability test; the "
        "post-call peak flag does not apply. Given back: (twin - metered) energy over the 2 h "
        "after the call, + = load the call took from the hours after.", "",
        f"- Calls: {v['calls']}, settled {v['settled']}, in the paid band {v['in_band']}.",
        f"- Requested {_mw(v['requested_mw_mean'])} MW (mean); declared "
        f"{_mw(v['declared_mw_median'])} MW (median); delivered (rise) "
        f"{_mw(v['delivered_metered_mw_mean'])} MW (mean); credited {_mw(v['credited_mw_mean'])} "
        f"MW; physical (metered - twin) {_mw(v['physical_mw_mean'])} MW; baseline error on the "
        f"call day {_mw(v['baseline_error_call_day_mw_mean'])} MW; given back "
        f"{_mw(v['given_back_mwh_mean'])} MWh; the devices' upward flexibility at the call "
        f"{_mw(v['flex_up_mw_median'])} MW (median).",
        f"- Money: revenue {v['revenue_yuan']:,.0f} yuan, penalties {v['penalty_yuan']:,.0f} "
        f"yuan, aggregator fee {v['fee_yuan']:,.0f} yuan, owner payouts "
        f"{v['payouts_yuan']:,.0f} yuan.",
    ]
    lines += [f"- Not settled: {k}: {n}" for k, n in v["not_settled"].items()]
    return lines + [""]


def summary_dict(result: SeasonResult) -> dict[str, Any]:
    h = result.headline()
    return {
        "scenario": result.scenario, "scale": result.scale, "devices": result.n_devices,
        "owners": result.n_owners, "simulated_days": result.simulated_days,
        "wall_seconds": round(result.wall_seconds, 1), "headline": h.as_dict(),
        "faults": fault_totals(result.events), "seams": result.seams,
        "calls_by_direction": {"peak_shaving": len(result.calls),
                               "valley_filling": len(result.valley_calls),
                               "capability_tests": sum(e.call.test for e in result.events)},
        "by_season": season_summary(result.events, result.system_peak_mw),
        "valley_filling": valley_summary(result.events),
        "capacity_payments": [
            {"programme": c.programme, "month": c.month, "credit_kw": round(float(c.credit_kw), 3),
             "price_yuan_per_kw_month": str(c.price_yuan_per_kw_month), "total_fen": c.total_fen,
             "fee_fen": c.fee_fen, "owners_fen": c.owners_fen, "events": len(c.event_ids)}
            for c in result.capacity],
        "events": [
            {"id": e.call.external_id, "type": e.call.event_type,
             "direction": e.call.direction,
             "start": e.call.start.isoformat(), "end": e.call.end.isoformat(),
             "requested_kw": round(e.call.requested_kw, 1), "declared_kw": round(e.declared_kw, 1),
             "delivered_kw": round(e.delivered_kw, 1),
             "performance_ratio": round(e.performance_ratio, 4),
             "baseline_error_pct": e.baseline_error_pct, "revenue_fen": e.revenue_fen,
             "penalty_fen": e.penalty_fen, "fee_fen": e.fee_fen,
             "payouts_fen": e.payouts_total_fen, "balanced": e.balanced,
             "comfort_violations": e.comfort_violations, "soc_violations": e.soc_violations,
             "faults": e.faults, "solve_seconds": round(e.solve_seconds, 2),
             "plan_path": e.plan_path, "season": e.season, "test": e.call.test,
             "measures": None if e.measures is None else e.measures.as_dict()}
            for e in result.events
        ],
    }


def write_report(result: SeasonResult, out_dir: Path) -> Path:
    """Write ``report.md``, its PNGs and ``summary.json`` into ``out_dir``; return the page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    h = result.headline()
    ev = result.events
    charts: list[tuple[str, str]] = []
    pe = _peak(result)
    if pe:
        _chart_events(result, out_dir / "events.png")
        charts.append(("events.png", "Requested, declared and delivered MW per event"))
        _chart_ratio(result, out_dir / "performance.png")
        charts.append(("performance.png", "Performance ratios against the paid band"))
        worst = min(pe, key=lambda e: e.performance_ratio)
        _chart_event_profile(result, worst, out_dir / "event-worst.png")
        charts.append(("event-worst.png", f"The weakest event ({worst.call.external_id})"))
        best = max(pe, key=lambda e: e.delivered_kw)
        if best is not worst:
            _chart_event_profile(result, best, out_dir / "event-best.png")
            charts.append(("event-best.png", f"The largest delivery ({best.call.external_id})"))
    valley = [e for e in result.valley_calls if len(e.index)]
    if valley:
        top = max(valley, key=lambda e: e.delivered_kw)
        _chart_event_profile(result, top, out_dir / "event-valley.png")
        charts.append(("event-valley.png", f"The largest valley filling ({top.call.external_id}): "
                       "load raised above the baseline"))
    if any(e.measures is not None for e in ev):
        _chart_measures(result, out_dir / "measures.png")
        charts.append(("measures.png", "Uncapped offer, declared, delivered, credited and "
                       "physical response per call; the rebound after each"))
    if len(result.city_load_mw):
        _chart_season(result, out_dir / "season.png")
        charts.append(("season.png", "City daily peak and the calls"))

    goal_word = "**meets**" if h.meets_goal else "**does not meet**"
    lines = [
        f"# {result.scenario}: demand response against the {h.goal_pct:g}% goal",
        "",
        f"**Headline.** Over {h.events} peak-shaving calls, the aggregator's demand-response capability "
        f"(median declared) was **{h.capability_mw:.1f} MW = {h.capability_pct:.2f}%** of the "
        f"{h.system_peak_mw:,.0f} MW system peak, and it delivered on average "
        f"**{h.delivered_mw:.1f} MW = {h.delivered_pct:.2f}%** (per event "
        f"{h.delivered_min_mw:.1f} to {h.delivered_max_mw:.1f} MW). The goal is "
        f"{h.goal_pct:g}% = {h.goal_mw:.1f} MW: the delivered response {goal_word} it. "
        f"The devices reported {h.flex_mw:.1f} MW ({h.flex_pct:.2f}%) of instantaneous "
        f"flexibility at the calls (median).",
        "",
        f"Money over the season's peak-shaving calls: revenue {h.revenue_yuan:,.0f} yuan, penalties "
        f"{h.penalty_yuan:,.0f} yuan, aggregator fee {h.fee_yuan:,.0f} yuan, owner payouts "
        f"{h.payouts_yuan:,.0f} yuan. {h.events_in_band} of {h.events} events reached the paid band."
        + _capacity_text(result),
        "",
        *_valley_lines(result),
        "## How this was made",
        "",
        f"- Scale: **{result.scale}**; {result.n_devices:,} devices of {result.n_owners:,} owners; "
        f"{result.simulated_days} simulated days (history before each season period included) "
        f"in {result.wall_seconds:,.0f} s of wall time.",
        "- Every device is simulated by the project's device physics behind the device-adapter "
        "protocol; baselines, bids, schedules and settlements come from the production modules "
        "(forecasting, bidding, vpp.scheduler). Delivered = settlement baseline minus metered "
        "energy over the window, divided by its duration.",
        "- The grid operator, weather and city load are simulated from the scenario file "
        "(`config/scenarios/`), where every figure names its source or is marked as an assumption.",
        "- Baseline error: the same baseline method applied to the last non-event working day "
        "before the event, against what that day actually metered (a proxy event; + = baseline "
        "too high).",
    ]
    for s in result.seams:
        lines.append(f"- Not yet wired (seam): {s}")
    lines += [""] + _season_lines(result) + ["## Fleet", "", "| segment | devices | rated MW |", "|---|---:|---:|"]
    for seg, n in result.fleet_count.items():
        lines.append(f"| {seg} | {n:,} | {result.fleet_rated_mw.get(seg, 0):,.1f} |")
    faults = fault_totals(ev)
    lines += ["", "## Charts", ""]
    for f, cap in charts:
        lines += [f"![{cap}]({f})", "", f"*{cap}*", ""]
    lines += [
        "## Events", "",
        f"Faults injected over the season: {', '.join(f'{k} {v}' for k, v in sorted(faults.items())) or 'none'}.",
        "Delivered is the reduction for peak shaving and the rise for valley filling.",
        "",
        "| event | type | requested MW | declared MW | delivered MW | ratio | baseline err % | "
        "revenue yuan | penalty yuan | fee yuan | payouts yuan | comfort viol. | SoC viol. | faults |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for e in ev:
        be = "n/a" if e.baseline_error_pct is None else f"{e.baseline_error_pct:+.1f}"
        fl = ", ".join(f"{k} {v}" for k, v in sorted(e.faults.items())) or "-"
        lines.append(
            f"| {e.call.start:%Y-%m-%d %H:%M} | {e.call.event_type}"
            f"{' valley filling' if e.call.sign < 0 else ''} | "
            f"{e.call.requested_kw / 1000:.1f} | {e.declared_kw / 1000:.1f} | "
            f"{e.delivered_kw / 1000:.1f} | {e.performance_ratio:.0%} | {be} | "
            f"{_yuan(e.revenue_fen)} | {_yuan(e.penalty_fen)} | {_yuan(e.fee_fen)} | "
            f"{_yuan(e.payouts_total_fen)} | {e.comfort_violations} | {e.soc_violations} | {fl} |"
        )
    plans = [e for e in ev if e.plan_path]
    if plans:
        lines += ["", "## Dispatch plans", "",
                  "How each event's plan was solved (the daemon's scheduler service; Dask "
                  "partitions above `[scheduler] partition_size` devices) and how long it took.",
                  "", "| event | solve s | path |", "|---|---:|---|"]
        lines += [f"| {e.call.external_id} | {e.solve_seconds:.1f} | {e.plan_path} |"
                  for e in plans]
    notes = [(e.call.external_id, n) for e in ev for n in e.notes]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {i}: {n}" for i, n in notes]
    page = out_dir / "report.md"
    page.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out_dir / "summary.json").write_text(
        json.dumps(summary_dict(result), indent=2, default=str), encoding="utf-8")
    return page
