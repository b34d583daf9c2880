"""PV inverters in the planner (vpp.scheduler.pv): the forecast output is an upper bound,
curtailment the one control; a valley-filling call curtails PV where that raises the net load,
a peak-shaving call leaves it alone, and an uncurtailed interval is dispatched without a
ceiling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vpp.scheduler.conftest import N, baseline_for, battery, price
from vpp.device_kinds import DeviceKind, PvInverterParams
from vpp.scheduler import DispatchModel, EventCall, FleetDevice, HorizonData
from vpp.scheduler.aggregate import aggregate, disaggregate
from vpp.scheduler.envelope import flexibility_envelope

SITE = PvInverterParams(dc_capacity_kwp=110.0)


def pv(i: int, rated: float = 100.0, **kw) -> FleetDevice:
    site = SITE.model_copy(update={"dc_capacity_kwp": 1.1 * rated})  # the same roof per kW
    return FleetDevice(i, DeviceKind.PV_INVERTER, rated, -rated, 0.0, site, **kw)


def solve(devs: list[FleetDevice], base: np.ndarray, call: EventCall | None, now: int = 0):
    return DispatchModel(devs, N, interval_minutes=15).solve(
        devs, HorizonData(base, price(), call, now, interval_minutes=15))


def _forecast(kw: float) -> np.ndarray:
    return np.full((1, N), -kw)


def test_a_valley_call_curtails_pv_as_far_as_it_must_and_no_further() -> None:
    devs = [pv(1)]
    plan = solve(devs, _forecast(60.0), EventCall(4, 12, 25.0, direction_sign=-1.0))
    assert plan.feasible
    p = plan.power_kw[0]
    assert p[4:12] == pytest.approx(-35.0, abs=0.1)  # 60 available, 25 held back
    assert p[:4] == pytest.approx(-60.0, abs=1e-3) and p[12:] == pytest.approx(-60.0, abs=1e-3)
    d = plan.dispatch_setpoint_kw[0]
    assert d[4:12] == pytest.approx(-35.0, abs=0.1)  # the ceiling written in the call
    assert (d[:4] == -100.0).all() and (d[12:] == -100.0).all()  # no ceiling outside it
    assert plan.setpoint_kw[0, 0] == pytest.approx(-60.0, abs=1e-3)  # the planned power


def test_a_peak_call_leaves_pv_alone_and_counts_its_output_in_the_net_load() -> None:
    devs = [battery(0, soc=60), pv(1)]
    base = np.vstack([baseline_for(devs[:1]), _forecast(60.0)])
    plan = solve(devs, base, EventCall(4, 12, 5.0))
    assert plan.feasible
    assert plan.power_kw[1] == pytest.approx(-60.0, abs=1e-3)  # PV neither curtailed nor raised
    assert (plan.dispatch_setpoint_kw[1] == -100.0).all()
    assert plan.reduction_kw[4:12] == pytest.approx(
        (base[0] - plan.power_kw[0])[4:12], abs=1e-3)  # the battery's alone


def test_pv_cannot_give_more_than_the_sky_so_a_big_valley_call_is_short() -> None:
    plan = solve([pv(1)], _forecast(30.0), EventCall(4, 12, 50.0, direction_sign=-1.0))
    assert not plan.feasible
    assert plan.power_kw[0, 4:12] == pytest.approx(0.0, abs=0.05)  # all of it curtailed
    assert plan.shortfall_kw[4:12] == pytest.approx(20.0, abs=0.1)


def test_night_past_and_offline_have_nothing_to_curtail() -> None:
    base = _forecast(60.0)
    base[0, 6:8] = 0.0  # a night (or overcast) stretch
    plan = solve([pv(1)], base, EventCall(4, 12, 25.0, direction_sign=-1.0), now=4)
    assert plan.power_kw[0, 6:8] == pytest.approx(0.0, abs=1e-3)
    off = solve([pv(1, available=False)], _forecast(60.0),
                EventCall(4, 12, 25.0, direction_sign=-1.0))
    assert off.power_kw[0] == pytest.approx(-60.0, abs=1e-3)


@settings(max_examples=15, deadline=None)
@given(forecast=st.floats(0.0, 100.0), target=st.floats(0.0, 150.0),
       sign=st.sampled_from([1.0, -1.0]), floor=st.floats(0.0, 50.0))
def test_output_stays_between_the_owners_floor_and_the_forecast(
        forecast: float, target: float, sign: float, floor: float) -> None:
    """``max_setpoint_kw = -floor``: the owner keeps at least ``floor`` kW of output."""
    dev = FleetDevice(1, DeviceKind.PV_INVERTER, 100.0, -100.0, -floor, SITE)
    plan = solve([dev], _forecast(forecast), EventCall(4, 12, target, direction_sign=sign))
    out = -plan.power_kw[0]
    tol = 1e-3 * max(forecast, 1.0)
    assert (out >= min(floor, forecast) - tol).all() and (out <= forecast + tol).all()
    assert (plan.dispatch_setpoint_kw[0] <= -floor + 1e-9).all()
    assert (plan.dispatch_setpoint_kw[0] >= -100.0).all()


def test_identical_roofs_aggregate_and_each_gets_its_own_ceiling() -> None:
    """Per-unit identical inverters are planned as one (vpp.scheduler.aggregate); the
    disaggregated plan dispatches each its share, and no ceiling outside the call."""
    devs = [pv(1, 100.0), pv(2, 50.0), pv(3, 100.0)]
    base = np.vstack([_forecast(60.0), _forecast(30.0), _forecast(60.0)])
    agg = aggregate(devs, base)
    assert len(agg.devices) == 1
    call = EventCall(4, 12, 50.0, direction_sign=-1.0)
    vplan = DispatchModel(agg.devices, N, interval_minutes=15).solve(
        agg.devices, HorizonData(agg.baseline_kw, price(), call, interval_minutes=15))
    plan = disaggregate(vplan, agg, devs, base)
    assert plan.feasible
    d = plan.dispatch_setpoint_kw
    assert d.shape == (3, N)
    assert d[:, 4:12].sum(axis=0) == pytest.approx(-150.0 + 50.0, abs=0.5)  # 50 kW held back
    assert d[1, 5] == pytest.approx(d[0, 5] / 2, abs=0.1)  # in proportion to the ratings
    assert (d[:, :4] == np.array([[-100.0], [-50.0], [-100.0]])).all()


def test_the_offer_envelope_counts_curtailment_for_valleys_only() -> None:
    devs = [pv(1), FleetDevice(2, DeviceKind.PV_INVERTER, 100.0, -100.0, -20.0,
                               SITE.model_copy())]
    q = np.stack([np.vstack([_forecast(70.0), _forecast(70.0)]),   # p10 of the load: sunny
                  np.vstack([_forecast(40.0), _forecast(40.0)])])  # p90: cloudy
    valley = flexibility_envelope(devs, q, [0.1, 0.9], 0.9, interval_minutes=15,
                                  direction_sign=-1.0)
    # at 90% confidence the cloudy case: 40 kW each, the second keeps 20 of it
    assert valley.by_kind_kw["pv_inverter"] == pytest.approx(np.full(N, 40.0 + 20.0))
    peak = flexibility_envelope(devs, q, [0.1, 0.9], 0.9, interval_minutes=15)
    assert (peak.by_kind_kw["pv_inverter"] == 0.0).all()


def test_a_fleet_exporting_at_baseline_keeps_a_rebound_band_that_is_not_inverted() -> None:
    """PV can make the fleet's baseline negative; the rebound cap after the call is a share
    of its size (it was -pct x baseline > 0 = the ceiling: OSQP refused the data)."""
    devs = [battery(0, soc=30), pv(1)]
    base = np.vstack([baseline_for(devs[:1]), _forecast(60.0)])
    assert (base.sum(axis=0) < 0).all()
    call = EventCall(4, 12, 20.0, rebound_max_pct=5.0, direction_sign=-1.0)
    plan = solve(devs, base, call)
    assert plan.feasible and plan.status == "solved"
    assert plan.response_kw[4:12] == pytest.approx(20.0, abs=0.2)
