"""Batteries between calls (vpp.scheduler.tou): the schedule works the tariff within the
batteries' limits and the export cap, holds a day-ahead call's reserve at its start, and its
saving (bidding.tariff.tou_saving) is exact, positive on a spread tariff and nil on a flat one."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from bidding.tariff import TouTariff, energy_cost_fen, parse_tariff, tou_saving
from vpp.device_kinds import BatteryParams, DeviceKind
from vpp.errors import ValidationError
from vpp.scheduler import DispatchModel, EventCall, FleetDevice, HorizonData
from vpp.scheduler.tou import BatteryReserve, call_reserves, tou_schedule

MIN = 15
N = 96  # one day
TZ = "Asia/Shanghai"
INDEX = pd.date_range("2026-06-01", periods=N, freq=f"{MIN}min", tz=TZ)
WINDOWS = [
    {"kind": "valley", "start": "23:00", "end": "07:00"},
    {"kind": "flat", "start": "07:00", "end": "11:00"},
    {"kind": "peak", "start": "11:00", "end": "14:00"},
    {"kind": "flat", "start": "14:00", "end": "18:00"},
    {"kind": "peak", "start": "18:00", "end": "23:00"},
]


def _tariff(peak: str, flat: str, valley: str) -> TouTariff:
    return parse_tariff({"prices_yuan_per_kwh": {"peak": peak, "flat": flat, "valley": valley},
                         "windows": WINDOWS})


SPREAD = _tariff("0.992", "0.62", "0.248")  # the hunan-2026 figures (unverified there)
FLAT = _tariff("0.62", "0.62", "0.62")


def _battery(i: int, soc: float = 50.0, rated: float = 100.0, hours: float = 2.0) -> FleetDevice:
    return FleetDevice(i, DeviceKind.BATTERY, rated, -rated, rated,
                       BatteryParams(capacity_kwh=rated * hours, soc_min_pct=10,
                                     soc_max_pct=95, charge_efficiency=0.95,
                                     discharge_efficiency=0.95),
                       owner="o", soc_pct=soc)


def _price(tariff: TouTariff, n: int = N) -> np.ndarray:
    return tariff.price_series(INDEX[:n]).to_numpy()


def _saving(tp, n: int = N, tariff: TouTariff = SPREAD):
    return tou_saving(tp.plan.setpoint_kw, tp.reference.setpoint_kw, INDEX[:n], tariff, MIN)


def test_charges_in_the_valley_and_discharges_at_the_peak() -> None:
    devs = [_battery(1), _battery(2, soc=30.0, rated=40.0, hours=4.0)]
    price = _price(SPREAD)
    tp = tou_schedule(devs, np.zeros((2, N)), price, interval_minutes=MIN)
    sp = tp.plan.setpoint_kw
    valley, peak = price == 0.248, price == 0.992
    tol = 1e-2
    assert (sp[:, valley].sum(axis=1) > 50.0).all()  # both charge in the valley
    assert (sp[:, peak].sum(axis=1) < -50.0).all()  # and discharge at the peaks
    assert (sp[:, peak] <= tol).all()  # never charge at a peak
    assert (sp[:, valley] >= -tol).all()  # never discharge in the valley
    # the day ends where it began: the saving is not energy taken out of the battery
    assert tp.plan.soc_pct[:, -1] == pytest.approx([50.0, 30.0], abs=0.05)


def test_within_soc_power_and_export_limits() -> None:
    devs = [_battery(1, soc=20.0), _battery(2, soc=90.0, rated=50.0, hours=1.0)]
    cap = np.full((2, N), np.inf)
    cap[0] = 7.5  # battery 1's host site draws 7.5 kW: export past it earns nothing
    tp = tou_schedule(devs, np.zeros((2, N)), _price(SPREAD), interval_minutes=MIN,
                      discharge_cap_kw=cap)
    sp, soc = tp.plan.setpoint_kw, tp.plan.soc_pct
    for k, d in enumerate(devs):
        assert (sp[k] >= d.min_setpoint_kw - 1e-9).all() and (sp[k] <= d.max_setpoint_kw + 1e-9).all()
        assert (soc[k] >= 10.0 - 0.05).all() and (soc[k] <= 95.0 + 0.05).all()
    assert sp[0].min() >= -7.5 - 0.05
    assert sp[0].min() < -7.0  # the cap binds: without it the battery discharges harder
    free = tou_schedule(devs, np.zeros((2, N)), _price(SPREAD), interval_minutes=MIN)
    assert free.plan.setpoint_kw[0].min() < -10.0


def _call_plan(devs: list[FleetDevice], start: int, end: int, kw: float):
    """A peak-shaving call's plan of the batteries, from full batteries at interval 0."""
    full = [FleetDevice(d.device_id, d.kind, d.rated_power_kw, d.min_setpoint_kw,
                        d.max_setpoint_kw, d.params, owner=d.owner, soc_pct=95.0,
                        terminal_soc_pct=10.0) for d in devs]
    n = end - start + 4
    model = DispatchModel(full, n, interval_minutes=MIN)
    plan = model.solve(full, HorizonData(np.zeros((len(full), n)), np.full(n, 0.62),
                                         EventCall(0, end - start, kw),
                                         interval_minutes=MIN))
    assert plan.feasible
    return plan, full


def test_a_day_ahead_calls_reserve_is_held_at_its_start() -> None:
    """A call 18:00-20:00 asking 150 kW of two batteries: its plan draws a reserve from each;
    the schedule from midnight ends at 18:00 holding it, bought in the valley, and the call's
    plan from that state meets the call. Dropping the reserve leaves the call short."""
    devs = [_battery(1, soc=30.0), _battery(2, soc=30.0)]
    start, end = 72, 80
    call, planned = _call_plan(devs, start, end, 150.0)
    reserves = tuple(BatteryReserve(r.device_id, start, r.target_soc_pct, r.reserve_kwh)
                     for r in call_reserves(call, planned, 0, end - start))
    # 150 kW over 2 h from 200 kWh batteries at 0.95 discharge efficiency: ~316 kWh stored
    assert sum(r.reserve_kwh for r in reserves) == pytest.approx(300 / 0.95, rel=2e-3)
    price = _price(SPREAD, start)
    tp = tou_schedule(devs, np.zeros((2, start)), price, interval_minutes=MIN,
                      reserves=reserves)
    end_soc = tp.plan.soc_pct[:, -1]
    for r, s in zip(reserves, end_soc, strict=True):
        assert s >= r.target_soc_pct - 0.05
    valley = price == 0.248
    # what the reserve adds to the charge the batteries have is bought in the valley
    needed_kwh = sum((r.target_soc_pct - 30.0) / 100 * 200.0 / 0.95 for r in reserves)
    assert tp.plan.setpoint_kw[:, valley].sum() * MIN / 60 >= needed_kwh - 0.5
    shown = tp.summary()["reserves"]
    assert [x["device_id"] for x in shown] == [1, 2]
    assert shown[0]["planned_soc_pct"] >= shown[0]["target_soc_pct"] - 0.05

    def call_from(socs: np.ndarray) -> float:
        held = [FleetDevice(d.device_id, d.kind, d.rated_power_kw, d.min_setpoint_kw,
                            d.max_setpoint_kw, d.params, owner="o", soc_pct=float(s),
                            terminal_soc_pct=10.0) for d, s in zip(devs, socs, strict=True)]
        n = end - start + 4
        plan = DispatchModel(held, n, interval_minutes=MIN).solve(
            held, HorizonData(np.zeros((2, n)), np.full(n, 0.62), EventCall(0, end - start, 150.0),
                              interval_minutes=MIN))
        return plan.shortfall_kwh

    assert call_from(end_soc) < 0.5  # the call is met from the held reserve
    dropped = tou_schedule(devs, np.zeros((2, start)), price, interval_minutes=MIN)
    assert call_from(dropped.plan.soc_pct[:, -1]) > 50.0  # without it, the call falls short


def test_unreachable_reserve_is_planned_as_far_as_it_goes_and_said() -> None:
    d = _battery(1, soc=10.0, rated=10.0, hours=10.0)  # 100 kWh, charges 10 kW at most
    tp = tou_schedule([d], np.zeros((1, 8)), _price(SPREAD, 8), interval_minutes=MIN,
                      reserves=[BatteryReserve(1, 8, 95.0, 85.0)])
    assert tp.warnings and "unreachable" in tp.warnings[0]
    assert tp.plan.soc_pct[0, -1] == pytest.approx(10.0 + 0.95 * 10 * 2 / 100 * 100, abs=0.05)


def test_saving_positive_on_a_spread_tariff_and_nil_on_a_flat_one() -> None:
    devs = [_battery(1), _battery(2, soc=70.0)]
    spread = tou_schedule(devs, np.zeros((2, N)), _price(SPREAD), interval_minutes=MIN)
    s = _saving(spread)
    assert s.without_fen == 0  # idle without the price signal
    assert s.saving_fen > 10000  # over 100 yuan a day from 400 kWh of storage
    flat = tou_schedule(devs, np.zeros((2, N)), _price(FLAT), interval_minutes=MIN)
    assert flat.reference is flat.plan
    assert _saving(flat, tariff=FLAT).saving_fen == 0
    # with a reserve to buy, the reference buys it too (price-blind): still nil on a flat tariff
    res = [BatteryReserve(1, 48, 80.0, 140.0)]
    flat_r = tou_schedule(devs, np.zeros((2, 48)), _price(FLAT, 48), interval_minutes=MIN,
                          reserves=res)
    s_flat = _saving(flat_r, 48, FLAT)
    assert s_flat.saving_fen == 0 and s_flat.without_fen > 0
    spread_r = tou_schedule(devs, np.zeros((2, 48)), _price(SPREAD, 48), interval_minutes=MIN,
                            reserves=res)
    assert _saving(spread_r, 48).saving_fen > 0


def test_energy_cost_is_exact_and_rounded_once() -> None:
    idx = INDEX[:2]  # 00:00 and 00:15, valley at 0.248 yuan/kWh
    # 0.4 kW x 0.25 h = 100 Wh each: 2 x 100 Wh x 0.248 = 0.0496 yuan = 4.96 fen -> 5
    # (rounded per interval it would be 2 + 2 = 4)
    assert energy_cost_fen(np.array([0.4, 0.4]), idx, SPREAD, MIN) == 5
    # devices summed before rounding to Wh; export is a credit at the same price
    assert energy_cost_fen(np.array([[2.0, 2.0], [-1.0, -1.0]]), idx, SPREAD, MIN) == 12
    assert energy_cost_fen(np.array([-0.4, -0.4]), idx, SPREAD, MIN) == -5
    idx2 = INDEX[48:50]  # 12:00, peak 0.992
    assert energy_cost_fen(np.array([4.0, 4.0]), idx2, SPREAD, MIN) == int(
        (Decimal(2000) * Decimal("0.992") / 1000 * 100).to_integral_value())
    with pytest.raises(ValidationError, match="intervals"):
        energy_cost_fen(np.zeros(3), idx, SPREAD, MIN)


def test_bad_requests_are_refused() -> None:
    from tests.vpp.scheduler.conftest import building

    with pytest.raises(ValidationError, match="batteries only"):
        tou_schedule([building(1)], np.zeros((1, 8)), _price(SPREAD, 8), interval_minutes=MIN)
    with pytest.raises(ValidationError, match="must end there"):
        tou_schedule([_battery(1)], np.zeros((1, 8)), _price(SPREAD, 8), interval_minutes=MIN,
                     reserves=[BatteryReserve(1, 12, 60.0, 100.0)])
    with pytest.raises(ValidationError, match="not in the fleet"):
        tou_schedule([_battery(1)], np.zeros((1, 8)), _price(SPREAD, 8), interval_minutes=MIN,
                     reserves=[BatteryReserve(7, 8, 60.0, 100.0)])
    with pytest.raises(ValidationError, match="discharge_cap_kw"):
        tou_schedule([_battery(1)], np.zeros((1, 8)), _price(SPREAD, 8), interval_minutes=MIN,
                     discharge_cap_kw=np.zeros((1, 7)))


def test_discharge_cap_is_checked_and_kept_apart_by_aggregation() -> None:
    from dataclasses import replace

    from tests.vpp.scheduler.conftest import building
    from vpp.scheduler.aggregate import aggregate
    from vpp.scheduler.inputs import validate_device

    with pytest.raises(ValidationError, match="discharge_cap_kw"):
        validate_device(replace(_battery(1), discharge_cap_kw=(1.0,) * 7), 8)
    with pytest.raises(ValidationError, match="discharge_cap_kw"):
        validate_device(replace(building(1), discharge_cap_kw=(1.0,) * 8), 8)
    with pytest.raises(ValidationError, match="discharge_cap_kw"):
        validate_device(replace(_battery(1), discharge_cap_kw=(-1.0,) * 8), 8)
    a, b = replace(_battery(1), discharge_cap_kw=(5.0,) * 8), replace(_battery(2),
                                                                      discharge_cap_kw=(6.0,) * 8)
    assert len(aggregate([a, b], np.zeros((2, 8))).devices) == 2
    c = replace(_battery(3, rated=200.0, hours=2.0), discharge_cap_kw=(10.0,) * 8)
    agg = aggregate([a, c], np.zeros((2, 8)))  # the same per unit: one virtual battery
    assert len(agg.devices) == 1 and agg.devices[0].discharge_cap_kw == (15.0,) * 8


def test_battery_discharge_cap_follows_the_export_rule() -> None:
    from bidding.export_rule import battery_discharge_cap_kw

    base = np.array([[0.0, 0.0, -1.0]])
    site = np.array([[3.0, np.nan, np.nan]])  # metered host load 3 kW, then no site meter
    assert battery_discharge_cap_kw(True, base, site).tolist() == [[np.inf] * 3]
    assert battery_discharge_cap_kw(False, base, site).tolist() == [[3.0, 0.0, 1.0]]
    assert battery_discharge_cap_kw(False, base).tolist() == [[0.0, 0.0, 1.0]]
