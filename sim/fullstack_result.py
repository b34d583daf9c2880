"""What a full-stack run reports (:func:`sim.fullstack.run_full_stack`): the daemon's own
settlement of the call, read back from its database and API, as a
:class:`~sim.results.SeasonResult` with one :class:`~sim.results.EventOutcome`.

Nothing here measures delivery itself: the figures are the daemon's (settlement intervals,
payouts in integer fen, its plans' solve times), so the report shows what the product settled.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from sim.fullstack_fleet import Sample
from sim.fullstack_ocpp import ChargerGroup
from sim.results import EventOutcome, SeasonResult
from sim.scenarios.scenario import Scenario


def api_items(x: Any) -> list[dict[str, Any]]:
    """The rows of an API listing (a page ``{"items": [...]}`` or a plain list)."""
    return x["items"] if isinstance(x, dict) and "items" in x else list(x)


def settlement_detail(engine, event_id: int | None) -> dict[str, Any]:  # noqa: ANN001
    """The latest settlement's detail (per-interval record, baselines, what was not metered),
    or the event's settle error."""
    from sqlmodel import col, select

    from vpp.db import session_scope
    from vpp.models import DispatchPlan, GridEvent, Settlement

    if event_id is None:
        return {}
    with session_scope(engine) as s:
        plans = [{"solve_seconds": float(p.solve_seconds or 0.0), "status": p.status,
                  "shortfall_kw": p.shortfall_kw} for p in s.exec(
            select(DispatchPlan).where(DispatchPlan.event_id == event_id)
            .order_by(col(DispatchPlan.id)))]
        row = s.exec(select(Settlement).where(Settlement.event_id == event_id)
                     .order_by(col(Settlement.version).desc())).first()
        if row is not None:
            return {**(row.detail or {}), "plans": plans}
        ev = s.get(GridEvent, event_id)
        return {"settle_error": (ev.detail or {}).get("settle_error") if ev else None,
                "plans": plans}


def fullstack_result(scn: Scenario, sample: Sample, decision: dict, delivery: dict,  # noqa: PLR0913
            settlements: Any, payouts: Any, detail: dict[str, Any],
            applied: list[tuple[str, str]], daemon: dict[str, Any], simulator: dict[str, Any],
            wall: float, chargers: list[ChargerGroup] | None = None) -> SeasonResult:
    call = sample.call
    event_id = decision["event_id"]
    tz = scn.scenario.timezone
    rows = [x for x in api_items(settlements) if x["event_id"] == event_id]
    st = rows[-1] if rows else None
    pay = {str(p["owner_id"]): int(p["amount_fen"]) for p in api_items(payouts)
           if p["event_id"] == event_id}
    # the event's intervals as the daemon's settlement measured them (every owner in the bid)
    ivs = [i for i in (detail.get("result") or {}).get("intervals", []) if i.get("in_event")]
    idx = pd.DatetimeIndex([pd.Timestamp(i["interval_start"]) for i in ivs]).tz_convert(tz) \
        if ivs else pd.DatetimeIndex([], tz=tz)
    lag = simulator.get("loop_lag", {})
    n_cp = len(sample.charge_points)
    cps = f" and {n_cp} OCPP charge points" if n_cp else ""
    notes = [f"full stack: {len(sample.fleet)} devices on {sample.n_gateways} Modbus gateways"
             f"{cps} (a separate simulator process; its event loop lagged at most "
             f"{lag.get('max_s', 0):.2f} s), the daemon on the shared accelerated clock; "
             f"decision: {decision.get('status')} {decision.get('reason') or ''}".strip(),
             f"polls: {daemon['polls']:,}, failed {daemon['poll_errors']:,} "
             f"({daemon['devices_ever_failed_poll']} devices ever failed one, "
             f"{daemon['devices_offline_at_end']} offline at the end)"]
    if st is None:
        notes.append(f"no settlement: {daemon['status']}: "
                     f"{detail.get('settle_error') or 'not settled within the wait'}")
    else:
        base = detail.get("baseline") or "programme method over the metered history"
        notes.append(f"settled by the daemon (baseline: {base})")
        um = detail.get("unmetered") or {}
        if um.get("device_event_intervals"):
            d = um["device_event_intervals"]
            notes.append(f"{len(d)} device(s) without meter data in {sum(d.values())} event "
                         f"device-interval(s), counted as no response (rule: {um.get('rule')})")
        if um.get("owner_event_intervals"):
            notes.append(f"owner-intervals counted as no response (no device baseline): "
                         f"{sum(um['owner_event_intervals'].values())}")
    if n_cp:
        ocpp = simulator.get("ocpp") or {}
        notes.append(
            "EV chargers: " + "; ".join(g.text() for g in chargers or []) + " (the daemon's "
            f"per-device attribution); OCPP 1.6J / 2.0.1 charge points booted "
            f"{'/'.join(str(v) for v in (ocpp.get('booted') or {}).values())}, profiles "
            f"accepted {'/'.join(str(v) for v in (ocpp.get('profiles_accepted') or {}).values())}")
    counts = delivery.get("setpoints") or {}
    plans = detail.get("plans") or []
    if plans:
        notes.append(f"{len(plans)} dispatch plan(s) by the daemon (first solve "
                     f"{plans[0]['solve_seconds']:.1f} s, slowest "
                     f"{max(p['solve_seconds'] for p in plans):.1f} s)")
    ev = EventOutcome(
        call=call, declared_kw=float(decision.get("declared_kw") or 0.0),
        price_yuan_per_kwh=str(decision.get("price_yuan_per_kwh")), available_flex_kw=0.0,
        index=idx, baseline_kw=np.array([float(i["baseline_kw"]) for i in ivs]),
        metered_kw=np.array([float(i["metered_kw"]) for i in ivs]),
        band_lower_pct=50, band_upper_pct=120,
        revenue_fen=int(st["revenue_fen"]) if st else 0,
        penalty_fen=int(st["penalty_fen"]) if st else 0, fee_fen=int(st["fee_fen"]) if st else 0,
        payouts_fen=pay, baseline_error_pct=None, comfort_violations=0, soc_violations=0,
        faults=dict(Counter(mode for _, mode in applied)), notes=notes,
        settled_response_kwh=float(st["response_kwh"]) if st else 0.0,
        setpoints_written=int(sum(v for k, v in counts.items() if k != "failed")),
        setpoints_failed=int(counts.get("failed", 0)),
        system_load_mw=float(sample.city_mw.loc[call.start:call.end - timedelta(seconds=1)]
                             .mean()) if len(sample.city_mw) else 0.0,
        solve_seconds=float(plans[0]["solve_seconds"]) if plans else 0.0,
        plan_path=f"daemon (vpp.scheduler.service.Scheduler), {len(plans)} plan(s)"
        if plans else "",
    )
    res = SeasonResult(
        scenario=scn.name, scale="full-stack", system_peak_mw=scn.city.system_peak_mw,
        goal_pct=scn.city.dr_goal_pct, n_devices=len(sample.fleet),
        n_owners=len(sample.fleet.owners()),
        fleet_rated_mw={k: v / 1000 for k, v in sample.fleet.rated_kw_by_segment().items()},
        fleet_count=sample.fleet.count_by_segment(), days=[call.day], events=[ev],
        city_load_mw=sample.city_mw,
        fleet_load_mw=pd.Series(dtype=float, index=pd.DatetimeIndex([], tz=tz)),
        wall_seconds=wall, simulated_days=1,
    )
    left_out = sample.city_devices - sample.servable
    res.seams.append(f"{left_out:,} of {sample.city_devices:,} city devices have no register map "
                     f"able to express their rating (DC chargers, large chillers and lines); the "
                     f"full-stack sample ({len(sample.fleet) / sample.servable:.0%} of the "
                     f"servable ones) is drawn from the rest")
    return res
