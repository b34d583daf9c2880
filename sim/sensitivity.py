"""One-at-a-time sensitivity of the season's headline to the scenario's participation rates
(issue 18 item 6): each segment's ``enrolled_share`` moved low and high while every other
assumption stays as written, a season run for each, and a tornado chart of the delivered
response (mean MW of the season's calls).

Moving a segment's enrolled share moves its enrolled count (population x share), so one factor
per segment covers both the population and the rate. The low / high values are the share
x (1 -/+ ``relative``) (capped at 1): a stated range, not a sourced one (none of the shares has
a published range). Runs use a sample of each moved fleet (:func:`sample`: a device is in it
when the hash of its name falls below ``fraction``, so a run that moves one segment keeps every
other segment's sampled devices exactly) bidding as that share of the aggregator (the
programme's size minimum scaled, :func:`sim.fullstack.sample_programme`), and the MW are
scaled back by 1 / ``fraction``; small segments (a handful of smelting lines or data centres)
are coarse in a sample.

``python -m sim.sensitivity --out DIR [--fraction 0.1] [--event-days 1] [--segments a,b]``
writes ``sensitivity.json`` and ``tornado.png`` and prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sim.scenarios.fleet import Fleet, generate_fleet  # noqa: E402
from sim.scenarios.scenario import Scenario, load_scenario  # noqa: E402
from vpp.config import Settings, load_settings  # noqa: E402


@dataclass(frozen=True)
class Factor:
    """One assumption moved: a segment's enrolled share, its value as written and the range."""

    segment: str
    base: float
    low: float
    high: float


def factors(scn: Scenario, relative: float = 0.5,
            segments: list[str] | None = None) -> list[Factor]:
    """Each segment's enrolled share (or only ``segments``), low/high = x (1 -/+ relative)."""
    names = {s.name for s in scn.segments}
    unknown = sorted(set(segments or []) - names)
    if unknown:
        raise ValueError(f"unknown segment(s) {', '.join(unknown)} (valid: {', '.join(sorted(names))})")
    return [Factor(s.name, s.enrolled_share, s.enrolled_share * (1 - relative),
                   min(1.0, s.enrolled_share * (1 + relative)))
            for s in scn.segments if segments is None or s.name in segments]


def with_share(scn: Scenario, segment: str, share: float) -> Scenario:
    """``scn`` with one segment's enrolled share replaced (every other figure as written)."""
    segs = [s.model_copy(update={"enrolled_share": share}) if s.name == segment else s
            for s in scn.segments]
    return scn.model_copy(update={"segments": segs})


@dataclass(frozen=True)
class Outcome:
    """One run's headline, scaled to the city (MW)."""

    label: str
    devices: int
    delivered_mw: float
    declared_mw: float
    events: int
    credited_mw: float = 0.0  # the settlement's paid MW (band cap, export rule)


async def run_one(settings: Settings, scn: Scenario, label: str, fraction: float,
                  event_days: int, history_days: int) -> Outcome:
    """The season's first ``event_days`` calls on a ``fraction`` sample of ``scn``'s fleet."""
    from sim.season import RunOptions, SeasonRun

    fleet = sample(generate_fleet(scn), fraction)
    opts = RunOptions(event_days=event_days, history_days=history_days, capability_test=False)
    run = SeasonRun(settings, scn, fleet, opts)
    result = await run.run()
    h = result.headline()
    credited = [e.measures.credited_kw for e in result.calls if e.measures is not None]
    return Outcome(label, len(fleet.devices), h.delivered_mw / fraction,
                   h.capability_mw / fraction, h.events,
                   sum(credited) / len(credited) / 1000 / fraction if credited else 0.0)


def sample(fleet: Fleet, fraction: float) -> Fleet:
    """The devices whose name hashes (CRC-32) below ``fraction`` of the range: the same device
    is in or out whatever else the fleet holds, so moving one segment leaves the others'
    samples as they were (a stratified draw would re-draw every segment after it)."""
    cut = fraction * 2**32
    return Fleet([d for d in fleet.devices if zlib.crc32(d.spec.name.encode()) < cut],
                 fleet.seed)


def tornado(base: Outcome, rows: list[tuple[Factor, Outcome, Outcome]], path: Path,
            goal_mw: float) -> None:
    """Horizontal bars from the base run's delivered MW to each factor's low and high run,
    widest first."""
    rows = sorted(rows, key=lambda r: abs(r[2].delivered_mw - r[1].delivered_mw))
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.8))
    b = base.delivered_mw
    for k, (_, lo, hi) in enumerate(rows):
        ax.barh(k + 0.2, lo.delivered_mw - b, 0.4, left=b, color="#f59e0b",
                label="share x 0.5" if k == 0 else None)
        ax.barh(k - 0.2, hi.delivered_mw - b, 0.4, left=b, color="#3b82f6",
                label="share x 1.5 (at most 1)" if k == 0 else None)
    ax.axvline(b, color="#334155", lw=1)
    ax.axvline(goal_mw, color="#dc2626", ls="--", label=f"goal {goal_mw:.0f} MW")
    ax.set_yticks(range(len(rows)), [f"{f.segment} ({f.base:g})" for f, _, _ in rows],
                  fontsize=8)
    ax.set_xlabel(f"delivered MW, mean of the calls (base {b:.1f} MW)")
    ax.set_title("Sensitivity of delivered response to each enrolled share (one at a time)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def sensitivity(settings: Settings, scn: Scenario, out: Path, fraction: float,
                      event_days: int, history_days: int,
                      segments: list[str] | None = None) -> dict:
    """The base run and a low and high run per factor; writes the chart and the JSON."""
    from sim.fullstack import sample_programme

    out.mkdir(parents=True, exist_ok=True)
    settings, name, note = sample_programme(settings, scn.scenario.programme, fraction, out)
    scn = scn.model_copy(update={"scenario": scn.scenario.model_copy(
        update={"programme": name})})
    args = (fraction, event_days, history_days)
    base = await run_one(settings, scn, "base", *args)
    rows = []
    for f in factors(scn, segments=segments):
        lo = await run_one(settings, with_share(scn, f.segment, f.low), f"{f.segment} low", *args)
        hi = await run_one(settings, with_share(scn, f.segment, f.high), f"{f.segment} high",
                           *args)
        rows.append((f, lo, hi))
        print(json.dumps({"factor": f.segment, "low_mw": round(lo.delivered_mw, 1),
                          "high_mw": round(hi.delivered_mw, 1),
                          "credited_low_mw": round(lo.credited_mw, 1),
                          "credited_high_mw": round(hi.credited_mw, 1)}), flush=True)
    tornado(base, rows, out / "tornado.png", scn.city.goal_mw)
    doc = {"fraction": fraction, "event_days": event_days, "programme": note,
           "base": asdict(base),
           "factors": [{**asdict(f), "low_run": asdict(lo), "high_run": asdict(hi),
                        "span_mw": round(abs(hi.delivered_mw - lo.delivered_mw), 2)}
                       for f, lo, hi in rows]}
    (out / "sensitivity.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="zhuzhou-2025")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--event-days", type=int, default=1)
    ap.add_argument("--history-days", type=int, default=8)
    ap.add_argument("--segments", default=None, help="comma-separated (default: every segment)")
    a = ap.parse_args(argv)
    if not 0 < a.fraction <= 1:
        print(f"--fraction must be in (0, 1], got {a.fraction}", file=sys.stderr)
        return 2
    scn = load_scenario(a.scenario)
    segs = a.segments.split(",") if a.segments else None
    try:
        factors(scn, segments=segs)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    doc = asyncio.run(sensitivity(load_settings(None), scn, a.out, a.fraction, a.event_days,
                                  a.history_days, segs))
    widest = max(doc["factors"], key=lambda f: f["span_mw"], default=None)
    print(json.dumps({"sensitivity": a.scenario, "runs": 1 + 2 * len(doc["factors"]),
                      "base_delivered_mw": round(doc["base"]["delivered_mw"], 1),
                      "widest": widest and widest["segment"],
                      "widest_span_mw": widest and widest["span_mw"],
                      "wall_s": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
