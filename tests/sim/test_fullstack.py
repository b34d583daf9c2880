"""The full-stack scale on a small fleet, through the same code path as the 1,000-device run:
the scenario's devices served by pymodbus servers on 127.0.0.1 in their own process, enrolled
through the API, driven by the real daemon on a shared accelerated clock, called over REST,
faults injected, and settled by the daemon. Checks the accounting against the raw rows:
delivered = baseline - metered per owner and in sum, the metered figures are the telemetry
(each device's mean per interval, no-response rule where a device has none), payouts + fee =
revenue - penalty to the fen, every setpoint written within its device's limits."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func
from sqlmodel import col, select

from sim.fullstack import FullStackOptions, FullStackRun, run_full_stack
from sim.scenarios import Scenario, load_scenario
from tests.vpp.daemon.harness import PROGRAMME, daemon_settings
from vpp.db import make_engine, session_scope
from vpp.device_kinds import DeviceKind
from vpp.models import Device, OwnerPayout, Setpoint, Settlement, TelemetryReading, table_of


def _scenario() -> Scenario:
    """zhuzhou-2025 on the permissive test programme (no 10 MW minimum: a small fleet bids),
    each EV segment's sampled chargers under one operator: spread over many owners, a small
    sample leaves each owner too few posts for its load's low quantile (what the bid counts on)
    to be above zero, and no charger would be bid; at the full sample an operator has dozens."""
    scn = load_scenario("zhuzhou-2025")
    return scn.model_copy(update={
        "scenario": scn.scenario.model_copy(update={"programme": PROGRAMME}),
        "segments": [s.model_copy(update={"owner_pool": 1}) if s.kind is DeviceKind.EV_CHARGER
                     else s for s in scn.segments],
        # 10 minutes' notice instead of 30: less simulated time to wait through
        "grid_operator": scn.grid_operator.model_copy(
            update={"real_time_notice_minutes": 10})})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> FullStackRun:
    import asyncio

    tmp = tmp_path_factory.mktemp("fullstack")
    settings = daemon_settings(tmp, f"sqlite:///{tmp / 'unused.sqlite3'}")
    # 180x: a poll cycle (and heartbeat) of 0.15 s is 27 simulated seconds, inside the
    # devices' 60 s watchdogs; short request timeouts, as a silent device holds up the cycle
    # for all devices (three reads x 0.1 s)
    opts = FullStackOptions(n_devices=30, accel=180.0, poll_s=0.15, control_period_s=0.2,
                            poll_timeout_s=0.1, poll_retries=0, settle_delay_minutes=10.0,
                            lead_minutes=3.0, settle_timeout_s=60.0, ready_timeout_s=60.0,
                            extra_silent=2)
    return asyncio.run(run_full_stack(settings, _scenario(), tmp / "work", opts))


def test_the_event_settles_from_the_daemons_own_settlement(run: FullStackRun) -> None:
    res = run.result
    assert run.daemon["status"] == "settled", res.events[0].notes
    ev = res.events[0]
    assert res.n_devices >= 20 and len({d for d in res.fleet_count if res.fleet_count[d]}) >= 4
    assert ev.declared_kw > 0 and len(ev.index) == 4  # one hour of 15-minute intervals
    assert ev.setpoints_written > 0
    assert ev.balanced  # payouts + fee == revenue - penalty, from the API's figures
    # the two devices silenced 15 minutes in are settled as no response, the others as metered
    assert sum(1 for _, mode in run.faults if mode == "fail") >= 2
    assert any("counted as no response" in n for n in ev.notes), ev.notes


def test_accounting_against_the_rows(run: FullStackRun) -> None:
    engine = make_engine(f"sqlite:///{run.db_path.as_posix()}")
    try:
        with session_scope(engine) as s:
            st = s.exec(select(Settlement).where(Settlement.event_id == run.event_id)
                        .order_by(col(Settlement.version).desc())).first()
            assert st is not None, "the event is settled"
            result = st.detail["result"]
            owners = result["owners"]
            devices = {int(d.id): d for (d,) in s.execute(select(Device)).all()}
            payouts = {int(p.owner_id): int(p.amount_fen) for (p,) in s.execute(
                select(OwnerPayout).where(OwnerPayout.settlement_id == st.id)).all()}
            ivs = pd.DataFrame(result["intervals"])
            ev_ivs = ivs[ivs["in_event"]]
            t = table_of(TelemetryReading)
            step = pd.Timedelta(minutes=15)
            # each device's mean polled power per event interval, straight from the rows
            meter: dict[int, dict[str, float]] = defaultdict(dict)
            for t0 in ev_ivs["interval_start"]:
                a = pd.Timestamp(t0)
                for dev, kw in s.execute(
                        select(t.c.device_id, func.avg(t.c.power_kw))
                        .where(t.c.ts >= a.to_pydatetime(), t.c.ts < (a + step).to_pydatetime(),
                               t.c.power_kw.is_not(None))
                        .group_by(t.c.device_id)).all():
                    meter[int(dev)][t0] = float(kw)
            setpoints = s.execute(select(Setpoint).where(col(Setpoint.written_at).is_not(None))).all()
    finally:
        engine.dispose()

    # delivered = baseline - metered, per owner and in sum (integer Wh, as settled)
    for o in owners:
        assert o["response_kwh"] == pytest.approx(o["baseline_kwh"] - o["metered_kwh"], abs=2e-3)
    assert st.response_kwh == pytest.approx(st.baseline_kwh - st.metered_kwh, abs=2e-3)
    assert st.response_kwh == pytest.approx(sum(o["response_kwh"] for o in owners), abs=1e-6)
    assert st.metered_kwh == pytest.approx(sum(o["metered_kwh"] for o in owners), abs=1e-6)

    # metered per owner = the sum of its devices' polled means (a device-interval without
    # data counts as no response, per the settlement's own record of which ones)
    unmetered = (st.detail.get("unmetered") or {}).get("device_event_intervals", {})
    # every silenced device whose owner took a declared share is settled as no response for
    # the intervals it was silent (an owner that declared nothing is not in the settlement)
    settled_owners = {int(o["owner_id"]) for o in owners}
    silenced = {d for d, row in devices.items()
                if row.name in {n for n, mode in run.faults if mode == "fail"}
                and row.owner_id in settled_owners}
    assert silenced, "no silenced device belongs to a settled owner"
    assert {str(d) for d in silenced} <= set(unmetered), (silenced, unmetered)
    assert all(unmetered[str(d)] >= 2 for d in silenced)  # silent from 15 minutes in
    for o in owners:
        devs = [d for d, row in devices.items() if row.owner_id == o["owner_id"]]
        if any(str(d) in unmetered for d in devs):
            continue  # its metered figure includes baseline substitutes; checked below
        kwh = sum(meter[d][t0] * 0.25 for d in devs for t0 in ev_ivs["interval_start"])
        assert o["metered_kwh"] == pytest.approx(kwh, abs=0.01 + 1e-6 * kwh), o["owner_id"]
    for d, n in unmetered.items():
        assert sum(1 for t0 in ev_ivs["interval_start"] if t0 not in meter[int(d)]) == n

    # money: exact to the fen
    assert sum(payouts.values()) + st.fee_fen == st.revenue_fen - st.penalty_fen
    assert payouts == {int(o["owner_id"]): int(o["payout_fen"]) for o in owners}
    assert set(run.result.events[0].payouts_fen) == {str(k) for k in payouts}

    # safety: every setpoint written lies within its device's declared limits
    assert setpoints
    for (sp,) in setpoints:
        dev = devices[int(sp.device_id)]
        assert dev.min_setpoint_kw - 1e-6 <= sp.setpoint_kw <= dev.max_setpoint_kw + 1e-6
        if sp.status in ("written", "clamped"):  # verified by read-back
            assert dev.min_setpoint_kw - 0.1 <= sp.readback_kw <= dev.max_setpoint_kw + 0.1
    # a device told to ignore writes shows it: its read-back differs and the row says so
    ignoring = {n for n, mode in run.faults if mode != "fail"}
    assert all(sp.status != "unverified" or devices[int(sp.device_id)].name in ignoring
               for (sp,) in setpoints)

    # the report's figures are the settlement's
    ev = run.result.events[0]
    assert np.allclose(ev.baseline_kw, ev_ivs["baseline_kw"]) and np.allclose(
        ev.metered_kw, ev_ivs["metered_kw"])
    assert ev.settled_response_kwh == pytest.approx(st.response_kwh)


def test_ocpp_and_modbus_chargers_are_dispatched_metered_and_settled_alike(
        run: FullStackRun) -> None:
    """The sample's chargers split between OCPP charge points (both versions, in the simulator
    process, enrolled through ``POST /api/v1/charge-points``) and Modbus gateways; the daemon
    curtails both with its own plan (profiles for OCPP), their metered power follows, and the
    settlement credits both."""
    groups = {g.protocol: g for g in run.chargers}
    ocpp, modbus = groups["ocpp"], groups["modbus"]
    assert ocpp.chargers >= 10 and modbus.chargers >= 10
    sim = run.simulator["ocpp"]
    assert sim["charge_points"] == ocpp.chargers
    assert sum(sim["booted"].values()) == ocpp.chargers and min(sim["booted"].values()) >= 1
    assert min(sim["profiles_accepted"].values()) >= 1, sim  # 1.6J and 2.0.1 alike
    assert ocpp.settled >= 1 and modbus.settled >= 1
    assert ocpp.response_kwh > 0.5 and ocpp.metered_kwh < ocpp.baseline_kwh
    assert any("over OCPP" in n for n in run.result.events[0].notes)

    ev = run.result.events[0]
    start, end = ev.call.start, ev.call.end
    engine = make_engine(f"sqlite:///{run.db_path.as_posix()}")
    t = table_of(TelemetryReading)
    try:
        with session_scope(engine) as s:
            ids = [int(d.id or 0) for d in s.exec(select(Device).where(Device.profile == "ocpp"))]
            assert len(ids) == ocpp.chargers
            written = s.exec(select(Setpoint).where(col(Setpoint.device_id).in_(ids),
                                                    Setpoint.status == "written")).all()
            controlled = sorted({int(sp.device_id) for sp in written})
            assert len(controlled) >= 1

            def mean_kw(a: object, b: object) -> float:
                got = s.execute(select(func.avg(t.c.power_kw)).where(
                    t.c.device_id.in_(controlled), t.c.ts >= a, t.c.ts < b)).scalar()
                return float(got or 0.0)

            # they drew power before the call, and held to the profiles through it (the
            # telemetry is their MeterValues / TransactionEvents, relayed by the poller)
            before = mean_kw(start - pd.Timedelta(minutes=10), start)
            during = mean_kw(start + pd.Timedelta(minutes=5), end)
            cap = max(float(sp.setpoint_kw) for sp in written)
    finally:
        engine.dispose()
    assert before > 0.5, before
    assert during <= cap + 0.05 and during < before - 0.5, (before, during, cap)


def test_a_poll_cycle_slower_than_the_device_watchdogs_is_refused() -> None:
    from sim.fullstack import FullStackError, full_stack_settings
    from vpp.config import Settings

    with pytest.raises(FullStackError, match="more than half the devices' 60 s watchdog"):
        full_stack_settings(Settings(), FullStackOptions(accel=10.0, poll_s=6.0))
    ok = full_stack_settings(Settings(), FullStackOptions(accel=10.0, poll_s=2.5))
    assert ok.polling.interval_s == 2.5 and ok.polling.watchdog_period_s <= 1.25
    assert ok.daemon.settle_delay_minutes == 20.0
    assert not hasattr(ok.daemon, "accept_short_notice")  # calls keep the programme's notice
    assert ok.polling.timeout_s == 0.4 and ok.polling.retries == 1


def test_the_sample_bids_under_the_programme_scaled_to_its_share(tmp_path) -> None:  # noqa: ANN001
    from datetime import date

    from bidding.programme import load_programme
    from sim.fullstack import FullStackError, sample_programme
    from tests.conftest import REPO_ROOT
    from vpp.config import Settings

    settings = Settings(bidding={"programmes_dir": str(REPO_ROOT / "config" / "programmes")})
    out, name, note = sample_programme(settings, "hunan-2026", 0.125, tmp_path)
    assert name == "hunan-2026-sample" and "10 MW -> 1.25 MW" in note
    for day in (date(2025, 7, 4), date(2026, 7, 4)):  # both versions
        original = load_programme("hunan-2026", settings.bidding.programmes_dir, day)
        derived = load_programme(name, out.bidding.programmes_dir, day)
        assert derived.rules.min_declared_kw == pytest.approx(
            original.rules.min_declared_kw * 0.125)
        assert derived.rules.min_share_of_normal_load_pct == \
            original.rules.min_share_of_normal_load_pct
        assert derived.band == original.band
    # the other programmes are still there for the daemon
    assert load_programme("hunan-2026", out.bidding.programmes_dir, date(2026, 7, 4))
    with pytest.raises(FullStackError, match="programme 'nope'"):
        sample_programme(settings, "nope", 0.5, tmp_path)
