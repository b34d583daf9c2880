"""V2G chargers (vpp.scheduler.v2g): the car leaves with its driver's ask whatever the call or
price, wear is a cost, limits hold, and the offer envelope counts only what keeps the ask."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpp.device_kinds import DeviceKind, V2gChargerParams, parse_params
from vpp.errors import ValidationError
from vpp.scheduler import DispatchModel, EventCall, EvSession, FleetDevice, HorizonData
from vpp.scheduler.envelope import flexibility_envelope
from vpp.scheduler.redispatch import advance

N = 32  # 8 h of 15 min
DT = 0.25


def car(i: int = 1, *, soc: float = 60.0, ask: float | None = 80.0, arrival: int = 0,
        departure: int = 24, wear: float = 0.2, rated: float = 7.4, lo: float | None = None,
        hi: float | None = None, charge_kw: float = 7.4, discharge_kw: float = 7.4,
        flex_scale: float = 1.0) -> FleetDevice:
    p = V2gChargerParams(max_charge_kw=charge_kw, max_discharge_kw=discharge_kw,
                         car_battery_kwh=40.0, soc_min_pct=20.0, soc_max_pct=100.0,
                         departure_soc_pct=80.0, wear_yuan_per_kwh=wear)
    return FleetDevice(i, DeviceKind.V2G_CHARGER, rated, -rated if lo is None else lo,
                       rated if hi is None else hi, p, owner="v", soc_pct=soc,
                       terminal_soc_pct=ask, sessions=(EvSession(arrival, departure, 0.0),),
                       flex_scale=flex_scale)


def solve(devs: list[FleetDevice], call: EventCall | None = None,
          price: np.ndarray | None = None, base: np.ndarray | None = None):
    base = np.zeros((len(devs), N)) if base is None else base
    price = np.full(N, 0.6) if price is None else price
    model = DispatchModel(devs, N, interval_minutes=15)
    return model.solve(devs, HorizonData(base, price, call, interval_minutes=15))


def car_soc_from_setpoints(d: FleetDevice, setpoint_kw: np.ndarray) -> np.ndarray:
    """The car's state of charge (%) re-simulated from the plan's setpoints with its own
    efficiencies (what the physics would do), not read from the solver's variables."""
    p = d.params
    assert isinstance(p, V2gChargerParams) and d.soc_pct is not None
    gain = (p.charge_efficiency * np.maximum(setpoint_kw, 0.0)
            - np.maximum(-setpoint_kw, 0.0) / p.discharge_efficiency)
    return d.soc_pct + np.cumsum(gain) * DT / p.car_battery_kwh * 100.0


def charging_at_once(d: FleetDevice) -> np.ndarray:
    """The charger's baseline (1 x N, kW): the car charged at full power from its arrival until
    full or gone, as an uncontrolled charger would."""
    p = d.params
    assert isinstance(p, V2gChargerParams) and d.soc_pct is not None
    base, e = np.zeros((1, N)), d.soc_pct
    [s] = d.sessions
    for t in range(s.arrival, min(s.departure, N)):
        base[0, t] = min(p.max_charge_kw, (100.0 - e) / 100 * p.car_battery_kwh
                         / (p.charge_efficiency * DT))
        e += base[0, t] * p.charge_efficiency * DT / p.car_battery_kwh * 100
    return base


def test_departure_energy_is_held_in_a_call_that_would_drain_the_car() -> None:
    """A call up to departure asks far more than the car can give: the plan discharges only
    down to the driver's ask. The same call with the ask at the car's floor drains it, so the
    call does profit from draining and only the departure constraint holds it."""
    call = EventCall(16, 24, 20.0)  # 2 h up to the departure at interval 24
    plan = solve([car(ask=80.0)], call)
    soc = car_soc_from_setpoints(car(), plan.setpoint_kw[0])
    assert soc[23] >= 80.0 - 0.05  # at departure, re-simulated from the setpoints
    assert plan.soc_pct[0, 23] >= 80.0 - 0.05
    assert plan.shortfall_kw[16:24].min() > 1.0  # the call was not met: the car kept its ask
    assert plan.setpoint_kw[0, 16:24].min() < -1.0  # yet it did discharge above the ask
    drained = solve([car(ask=20.0)], call)
    assert car_soc_from_setpoints(car(), drained.setpoint_kw[0])[23] < 70.0
    assert drained.reduction_kw[16:24].sum() > plan.reduction_kw[16:24].sum() + 5.0


def test_wear_cost_changes_the_plan() -> None:
    """Evening prices well above the night's: without wear the car sells its surplus and buys
    it back; a wear cost above the spread keeps it from discharging."""
    price = np.full(N, 0.3)
    price[8:16] = 1.5
    free = solve([car(soc=90.0, wear=0.0)], price=price)
    worn = solve([car(soc=90.0, wear=3.0)], price=price)
    out_free = -np.minimum(free.setpoint_kw[0], 0.0).sum() * DT
    out_worn = -np.minimum(worn.setpoint_kw[0], 0.0).sum() * DT
    assert out_free > 5.0
    assert out_worn < 0.05
    for plan in (free, worn):
        assert plan.soc_pct[0, 23] >= 80.0 - 0.05


def test_limits_are_never_exceeded_and_nothing_flows_without_the_car() -> None:
    """Setpoint limits and the kind's own charge/discharge rating (here lower than the
    setpoint limits) hold; outside the session the charger draws nothing."""
    d = car(rated=11.0, lo=-11.0, hi=11.0, charge_kw=7.0, discharge_kw=5.0, arrival=4,
            departure=28)
    price = np.full(N, 0.3)
    price[10:18] = 2.0
    plan = solve([d], EventCall(12, 16, 30.0), price=price)
    sp = plan.setpoint_kw[0]
    assert sp.max() <= 7.0 + 1e-6 and sp.min() >= -5.0 - 1e-6
    assert np.abs(sp[:4]).max() < 1e-6 and np.abs(sp[28:]).max() < 1e-6
    soc = car_soc_from_setpoints(d, sp)
    assert soc.min() >= 20.0 - 0.05 and soc.max() <= 100.0 + 0.05
    assert soc[27] >= 80.0 - 0.05


def test_it_joins_a_peak_shaving_call_by_charging_less_and_discharging() -> None:
    """With an uncontrolled charging baseline, the call's reduction is the charging held back
    plus the discharge, and the car still leaves with its ask."""
    d = car(soc=70.0, ask=80.0)
    base = np.zeros((1, N))
    base[0, :24] = 7.4
    plan = solve([d], EventCall(8, 12, 10.0), base=base)
    assert plan.feasible
    assert plan.reduction_kw[8:12].min() >= 10.0 * (1 - 1e-3)
    assert plan.setpoint_kw[0, 8:12].max() < 0.0  # discharging, not just idle
    assert car_soc_from_setpoints(d, plan.setpoint_kw[0])[23] >= 80.0 - 0.05


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(soc=st.floats(20.0, 100.0), ask=st.floats(20.0, 100.0), arrival=st.integers(0, 20),
       stay=st.integers(4, 40), start=st.integers(0, 28), length=st.integers(1, 8),
       request_kw=st.floats(0.0, 30.0), wear=st.floats(0.0, 2.0), evening=st.floats(0.1, 3.0))
def test_any_call_any_price_leaves_the_car_with_its_ask(
        soc: float, ask: float, arrival: int, stay: int, start: int, length: int,
        request_kw: float, wear: float, evening: float) -> None:
    departure = arrival + stay
    hours = (min(departure, N) - arrival) * DT
    reach = soc + 100 * 0.95 * 7.4 * hours / 40.0
    ask = min(ask, reach - 0.5) if ask > soc else ask  # an ask the car can reach
    ask = max(ask, 20.0)
    d = car(soc=soc, ask=ask, arrival=arrival, departure=departure, wear=wear)
    price = np.full(N, 0.4)
    price[12:20] = evening
    call = EventCall(start, min(start + length, N), request_kw)
    plan = solve([d], call, price=price, base=charging_at_once(d))
    sp = plan.setpoint_kw[0]
    assert sp.max() <= 7.4 + 1e-6 and sp.min() >= -7.4 - 1e-6
    off = np.ones(N, dtype=bool)
    off[arrival:min(departure, N)] = False
    assert np.abs(sp[off]).max(initial=0.0) < 1e-3
    e = car_soc_from_setpoints(d, sp)
    assert e[min(departure, N) - 1] >= ask - 1e-6  # exactly, whatever the solver's tolerance
    assert e.min() >= 20.0 - 1e-6 and e.max() <= 100.0 + 1e-3
    assert np.allclose(plan.soc_pct[0], e)


def test_the_offer_never_counts_energy_the_driver_needs() -> None:
    """The envelope's reduction, held for its sustain period, can be planned without touching
    the ask; a car at its ask departing right after the hold offers only the charging it
    would draw."""
    hold = 4
    for soc, ask, dep in ((90.0, 80.0, 24), (60.0, 80.0, 24), (80.0, 80.0, 12), (50.0, 80.0, 16)):
        d = car(soc=soc, ask=ask, departure=dep)
        base = np.zeros((1, N))
        base[0, :dep] = 3.0
        env = flexibility_envelope([d], base[None], [0.5], 0.5, sustain_intervals=hold,
                                   interval_minutes=15)
        for start in (0, 4, 8):
            if start + hold > dep:
                continue
            offered = float(env.reduction_kw[start : start + hold].min())
            plan = solve([d], EventCall(start, start + hold, offered), base=base)
            assert plan.feasible, (soc, ask, dep, start, offered)
            assert plan.soc_pct[0, dep - 1] >= ask - 0.05
    at_ask = car(soc=80.0, ask=80.0, departure=12)
    base = np.zeros((1, N))
    base[0, :12] = 3.0
    env = flexibility_envelope([at_ask], base[None], [0.5], 0.5, sustain_intervals=hold,
                               interval_minutes=15)
    assert env.reduction_kw[8] == pytest.approx(3.0)  # the charging held back, no discharge
    assert env.reduction_kw[9:].max() == 0.0  # the hold would outlast the car's stay
    assert env.by_kind_kw["v2g_charger"].sum() == pytest.approx(env.reduction_kw.sum())


def test_a_receding_plan_carries_the_cars_state_of_charge() -> None:
    d = car(soc=60.0)
    price = np.full(N, 0.6)
    plan = solve([d], EventCall(8, 12, 5.0), price=price)
    [later] = advance([d], plan, 10)
    assert later.soc_pct == pytest.approx(plan.soc_pct[0, 9])
    assert later.terminal_soc_pct == 80.0 and later.sessions == d.sessions


def test_no_car_no_flexibility() -> None:
    d = FleetDevice(1, DeviceKind.V2G_CHARGER, 7.4, -7.4, 7.4, V2gChargerParams())
    plan = solve([d], EventCall(8, 12, 5.0))
    assert np.abs(plan.setpoint_kw).max() < 1e-9 and not plan.feasible


@pytest.mark.parametrize("device, message", [
    (car(soc=30.0, ask=100.0, departure=4), "the car can reach at most"),
])
def test_an_unreachable_ask_is_refused(device: FleetDevice, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        solve([device])


@pytest.mark.parametrize("params, message", [
    ({"soc_min_pct": 50.0, "soc_max_pct": 40.0}, "state-of-charge limits inverted"),
    ({"departure_soc_pct": 10.0}, "outside the car's range"),
    ({"max_discharge_kw": 0.0}, "greater than 0"),
    ({"car_battery_kwh": -1.0}, "greater than 0"),
])
def test_bad_params_are_refused_clearly(params: dict, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        parse_params(DeviceKind.V2G_CHARGER, params)


@pytest.mark.parametrize("change, message", [
    ({"sessions": (EvSession(0, 8, 5.0),)}, "carries no energy_kwh"),
    ({"soc_pct": None}, "needs its state of charge"),
    ({"terminal_soc_pct": 10.0}, "outside the car's range"),
    ({"sessions": (EvSession(0, 8, 0.0), EvSession(9, 12, 0.0))}, "one connector"),
])
def test_bad_state_is_refused_clearly(change: dict, message: str) -> None:
    from dataclasses import replace
    with pytest.raises(ValidationError, match=message):
        solve([replace(car(), **change)])


def _view(soc: float | None, prefs: dict) -> FleetDevice:
    from datetime import UTC, datetime, timedelta

    from device_adapters.protocol import DeviceState
    from vpp.scheduler.device_view import ev_session_from_preferences, scheduler_device

    h0 = datetime(2025, 7, 15, 18, 0, tzinfo=UTC)
    state = DeviceState(1, h0, 7.4, None, soc, None, True, 7.4, 7.4)
    return scheduler_device(
        1, DeviceKind.V2G_CHARGER, V2gChargerParams(), rated_power_kw=7.4, min_setpoint_kw=-7.4,
        max_setpoint_kw=7.4, owner="o", state=state, preferences=prefs,
        sessions=ev_session_from_preferences(prefs, h0, timedelta(minutes=15), 0),
        horizon_intervals=N, interval_minutes=15)


def test_the_planners_view_takes_the_car_the_charger_reads_and_the_owners_departure() -> None:
    """The daemon's rule (vpp.scheduler.device_view): the car's state of charge from the
    charger, the ask its state of charge plus the declared need, lowered to what it can reach;
    no car read, or no departure declared: no car to plan (pinned at its baseline)."""
    d = _view(50.0, {"ev_departure": "23:00", "ev_energy_needed_kwh": 8.0})
    assert d.soc_pct == 50.0 and d.terminal_soc_pct == pytest.approx(70.0)  # 8 kWh of 40
    assert d.sessions == (EvSession(0, 20, 0.0),)
    far = _view(50.0, {"ev_departure": "19:00", "ev_energy_needed_kwh": 30.0})
    assert far.terminal_soc_pct == pytest.approx((50.0 + 7.4 * 0.95 * 100 / 40) * 0.999)
    solve([far])  # plannable
    for soc, prefs in ((0.0, {"ev_departure": "23:00", "ev_energy_needed_kwh": 8.0}),
                       (None, {"ev_departure": "23:00", "ev_energy_needed_kwh": 8.0}),
                       (50.0, {})):
        none = _view(soc, prefs)
        assert none.sessions == () and none.soc_pct is None


def test_a_discharge_cap_holds_the_car_to_its_sites_load() -> None:
    """Where export does not count, a per-interval discharge cap (the host site's load, as a
    battery's, FleetDevice.discharge_cap_kw) bounds the car's discharge in the plan."""
    from dataclasses import replace
    cap = np.full(N, 2.0)
    d = replace(car(soc=95.0, ask=60.0), discharge_cap_kw=tuple(cap))
    plan = solve([d], EventCall(8, 16, 20.0))
    assert plan.setpoint_kw[0].min() >= -2.0 - 1e-4
    assert plan.setpoint_kw[0, 8:16].max() < -1.9  # at its cap throughout the call
    free = solve([car(soc=95.0, ask=60.0)], EventCall(8, 16, 20.0))
    assert free.setpoint_kw[0, 8:16].min() < -7.0
