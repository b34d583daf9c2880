"""A simulated grid operator (the provincial load-management centre) and fault injection.

:class:`GridOperator` turns the scenario's weather into a season of calls: a day-ahead invitation
(issued the afternoon before) for each working day whose forecast peak reaches the trigger, and a
real-time call (short notice, one hour) when a day turns out hotter (colder in winter) than
forecast. :func:`draw_faults` picks devices that fail, leave or under-deliver mid-event, and
:class:`FaultyAdapter` applies those faults to any :class:`~device_adapters.protocol.DeviceAdapter`
without touching the device model behind it.

Powers in kW, timestamps aware (the scenario's time zone).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bidding.core import direction_sign
from device_adapters.protocol import DeviceState, SetpointResult
from sim.scenarios.city import daily_peak_mw, seasonal_peak_mw
from sim.scenarios.scenario import Scenario
from vpp.calendar import MarketCalendar
from vpp.device_kinds import DeviceKind
from vpp.errors import DeviceError

DAY_AHEAD_ISSUE_TIME = time(17, 0)  # invitations go out the afternoon before (ASSUMPTION)

FaultMode = Literal["fail", "leave", "under_deliver"]
Direction = Literal["peak_shaving", "valley_filling"]


@dataclass(frozen=True)
class GridCall:
    """One call from the grid operator."""

    external_id: str
    event_type: Literal["day_ahead", "real_time"]
    direction: Direction
    programme: str
    issued_at: datetime
    start: datetime
    end: datetime
    requested_kw: float
    reason: str
    test: bool = False  # a capability test: reported apart from the season's calls

    @property
    def day(self) -> date:
        return self.start.date()

    @property
    def hours(self) -> float:
        return (self.end - self.start) / timedelta(hours=1)

    @property
    def sign(self) -> float:
        """+1 for peak shaving (response = baseline - load), -1 for valley filling (load -
        baseline): :func:`bidding.core.direction_sign`."""
        return direction_sign(self.direction)

    def to_payload(self) -> dict[str, Any]:
        """The call as a JSON body for the daemon's REST intake (full-stack scale)."""
        return {
            "external_id": self.external_id, "event_type": self.event_type,
            "direction": self.direction, "programme": self.programme,
            "start": self.start.isoformat(), "end": self.end.isoformat(),
            "requested_kw": round(self.requested_kw, 3),
        }


def _at(day: date, t: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, t, tzinfo=tz)


class GridOperator:
    """Issues the season's calls from actual and forecast weather (deterministic)."""

    def __init__(self, scn: Scenario, weather: pd.DataFrame) -> None:
        self.scn = scn
        self.weather = weather
        self.calendar = MarketCalendar.from_scenario(scn)
        self.tz = self.calendar.zone
        self.forecast_peak_mw = daily_peak_mw(scn, weather, forecast=True)
        self.actual_peak_mw = daily_peak_mw(scn, weather)

    def _window(self, day: date) -> tuple[datetime, datetime]:
        g = self.scn.grid_operator
        a, b = g.summer_window if self.calendar.is_summer(day) else g.winter_window
        return _at(day, a, self.tz), _at(day, b, self.tz)

    def calls(self, days: Sequence[date]) -> list[GridCall]:
        """The calls for ``days`` (the days of the season periods, history excluded)."""
        g = self.scn.grid_operator
        prog = self.scn.scenario.programme
        per_month: Counter[tuple[int, int]] = Counter()
        out: list[GridCall] = []
        for day in days:
            if not g.weekend_calls and not self.calendar.is_workday(day):
                continue
            month = (day.year, day.month)
            if per_month[month] >= g.max_events_per_month:
                continue
            ref = seasonal_peak_mw(self.scn, day, self.calendar)
            fc = float(self.forecast_peak_mw[day])
            start, end = self._window(day)
            if fc >= g.day_ahead_trigger_pu * ref:
                issued = _at(day - timedelta(days=1), DAY_AHEAD_ISSUE_TIME, self.tz)
                out.append(GridCall(
                    f"sim-da-{day:%Y%m%d}", "day_ahead", "peak_shaving", prog, issued, start, end,
                    g.request_pct_of_peak / 100 * fc * 1000,
                    f"forecast peak {fc:,.0f} MW = {fc / ref:.0%} of the season's {ref:,.0f} MW",
                ))
                per_month[month] += 1
                continue
            w = self.weather.loc[day]
            surprise = (w.tmax_c - w.tmax_forecast_c) if self.calendar.is_summer(day) else (
                w.tmin_forecast_c - w.tmin_c)
            if surprise >= g.real_time_trigger_c:
                rt_start = start
                issued = rt_start - timedelta(minutes=g.real_time_notice_minutes)
                act = float(self.actual_peak_mw[day])
                out.append(GridCall(
                    f"sim-rt-{day:%Y%m%d}", "real_time", "peak_shaving", prog, issued, rt_start,
                    rt_start + timedelta(minutes=g.real_time_duration_minutes),
                    g.real_time_request_pct_of_peak / 100 * act * 1000,
                    f"{surprise:.1f} degC beyond the forecast; load heading for {act:,.0f} MW",
                ))
                per_month[month] += 1
        return out


    def valley_calls(self, days: Sequence[date]) -> list[GridCall]:
        """The valley-filling calls among ``days`` by ``[grid_operator.valley_filling]`` (none
        when the scenario has no such table): a day-ahead call (invited at 17:00 the day
        before) over the table's window on each day of its day type from ``first_day`` on, at
        most ``max_events_per_month`` a month, for ``request_pct_of_peak`` of the day's forecast
        peak. Draws nothing at random, so the peak-shaving calls are those of :meth:`calls`."""
        v = self.scn.grid_operator.valley_filling
        if v is None:
            return []
        per_month: Counter[tuple[int, int]] = Counter()
        out: list[GridCall] = []
        for day in days:
            work = self.calendar.is_workday(day)
            if day < v.first_day or (v.day_type == "non_working" and work) or (
                    v.day_type == "working" and not work):
                continue
            if per_month[(day.year, day.month)] >= v.max_events_per_month:
                continue
            fc = float(self.forecast_peak_mw[day])
            out.append(GridCall(
                f"sim-vf-{day:%Y%m%d}", "day_ahead", "valley_filling", self.scn.scenario.programme,
                _at(day - timedelta(days=1), DAY_AHEAD_ISSUE_TIME, self.tz),
                _at(day, v.window[0], self.tz), _at(day, v.window[1], self.tz),
                v.request_pct_of_peak / 100 * fc * 1000,
                f"valley filling: {v.request_pct_of_peak:g}% of the {fc:,.0f} MW forecast peak "
                f"({'working' if work else 'non-working'} day)"))
            per_month[(day.year, day.month)] += 1
        return out

    def season_calls(self, days: Sequence[date], capability_test: bool = True) -> list[GridCall]:
        """Every call among ``days`` in start order: the peak-shaving calls (:meth:`calls`),
        with the capability tests when ``capability_test``, and the valley-filling calls
        (:meth:`valley_calls`) on days the operator has not called already (one call a day)."""
        calls = self.calls(days)
        if capability_test:
            calls = with_capability_tests(calls, self.capability_tests(days))
        taken = {c.day for c in calls}
        valley = [c for c in self.valley_calls(days) if c.day not in taken]
        return sorted(calls + valley, key=lambda c: c.start)

    def capability_tests(self, days: Sequence[date]) -> list[GridCall]:
        """One capability-test call per season among ``days``: a day-ahead call for the
        scenario's goal (``dr_goal_pct`` of the annual system peak) over the hour in which the
        season's load shape peaks, on the working day with the season's highest forecast
        peak. It runs through the same lifecycle as any call; ``test`` marks it."""
        c = self.scn.city
        out: list[GridCall] = []
        for summer in (True, False):
            pool = [d for d in days if self.calendar.is_summer(d) == summer
                    and self.calendar.is_workday(d)]
            if not pool:
                continue
            day = max(pool, key=lambda d: float(self.forecast_peak_mw[d]))
            shape = c.summer_shape_pu if summer else c.winter_shape_pu
            hour = int(np.argmax(shape))
            start = _at(day, time(hour), self.tz)
            out.append(GridCall(
                f"sim-test-{day:%Y%m%d}", "day_ahead", "peak_shaving",
                self.scn.scenario.programme,
                _at(day - timedelta(days=1), DAY_AHEAD_ISSUE_TIME, self.tz), start,
                start + timedelta(hours=1), c.dr_goal_pct / 100 * c.system_peak_mw * 1000,
                f"capability test: {c.dr_goal_pct:g}% of the {c.system_peak_mw:,.0f} MW annual "
                f"peak in the season's peak hour ({hour:02d}:00)", test=True))
        return out


def with_capability_tests(calls: list[GridCall], tests: list[GridCall]) -> list[GridCall]:
    """The season's calls with the capability tests added; a test day's own call is not issued
    (the operator calls a day once), so the season's calls lose at most one per season."""
    test_days = {t.day for t in tests}
    return sorted([c for c in calls if c.day not in test_days] + tests, key=lambda c: c.start)


@dataclass(frozen=True)
class DeviceFault:
    """A fault of one device during one event, from ``at`` on."""

    device_index: int
    mode: FaultMode
    at: datetime
    fraction: float = 0.0  # under_deliver: share of the commanded move still delivered
    sign: float = 1.0  # the call's direction: +1 peak shaving (moves down), -1 valley filling


def draw_faults(scn: Scenario, call: GridCall, n_devices: int,
                rng: np.random.Generator, interval_minutes: int) -> list[DeviceFault]:
    """Faults for one event: each device independently fails, leaves, under-delivers or not;
    failures and departures happen at a random boundary of the ``interval_minutes`` market
    intervals (the scenario's) inside the event."""
    f = scn.faults
    u = rng.random(n_devices)
    modes = np.full(n_devices, "", dtype=object)
    modes[u < f.fail_probability] = "fail"
    c1 = f.fail_probability + f.leave_probability
    modes[(u >= f.fail_probability) & (u < c1)] = "leave"
    modes[(u >= c1) & (u < c1 + f.under_deliver_probability)] = "under_deliver"
    steps = max(1, int(call.hours * 60 // interval_minutes))
    out = []
    lo, hi = f.under_deliver_fraction
    for i in np.flatnonzero(modes != ""):
        mode = str(modes[i])
        k = 0 if mode == "under_deliver" else int(rng.integers(1, steps)) if steps > 1 else 0
        at = call.start + timedelta(minutes=k * interval_minutes)
        out.append(DeviceFault(int(i), mode, at, float(rng.uniform(lo, hi)),  # type: ignore[arg-type]
                               call.sign))
    return out


@dataclass
class FaultyAdapter:
    """Wraps a device adapter and, from ``fault.at`` on (by ``clock``), makes it misbehave:

    - ``fail``: the device drops off: reads and writes raise :class:`DeviceError`, and the device
      falls back to its own behaviour (released once);
    - ``leave``: the owner overrides: control is released, reads report ``available=False``,
      writes are refused;
    - ``under_deliver``: the device follows only ``fraction`` of each commanded move in the
      call's direction (below the power it drew when the fault began for peak shaving, above
      it for valley filling); a move the other way is followed.

    The wrapped adapter stays the truth for metering (settlement uses the meter, not telemetry).
    """

    inner: Any
    fault: DeviceFault
    clock: Callable[[], datetime]
    _released: bool = field(default=False, init=False)
    _ref_kw: float | None = field(default=None, init=False)

    @property
    def device_id(self) -> int:
        return int(self.inner.device_id)

    @property
    def kind(self) -> DeviceKind:
        return self.inner.kind  # type: ignore[no-any-return]

    @property
    def min_setpoint_kw(self) -> float:
        return float(self.inner.min_setpoint_kw)

    @property
    def max_setpoint_kw(self) -> float:
        return float(self.inner.max_setpoint_kw)

    def _active(self) -> bool:
        return self.clock() >= self.fault.at

    async def _drop(self) -> None:
        if not self._released:
            self._released = True
            await self.inner.release()

    async def read_state(self) -> DeviceState:
        if not self._active():
            return await self.inner.read_state()  # type: ignore[no-any-return]
        if self.fault.mode == "fail":
            await self._drop()
            raise DeviceError(f"device {self.device_id}: no response (simulated failure)")
        state: DeviceState = await self.inner.read_state()
        if self.fault.mode == "leave":
            await self._drop()
            state.available = False
            state.flex_down_kw = state.flex_up_kw = 0.0
            state.detail = {**state.detail, "fault": "owner override"}
        return state

    async def apply_setpoint(self, setpoint_kw: float) -> SetpointResult:
        if not self._active():
            return await self.inner.apply_setpoint(setpoint_kw)  # type: ignore[no-any-return]
        if self.fault.mode == "fail":
            await self._drop()
            raise DeviceError(f"device {self.device_id}: no response (simulated failure)")
        if self.fault.mode == "leave":
            await self._drop()
            return SetpointResult(self.device_id, setpoint_kw, setpoint_kw, False, None, False,
                                  "owner override: device left the event")
        if self._ref_kw is None:
            self._ref_kw = (await self.inner.read_state()).power_kw
        ref = self._ref_kw
        move = setpoint_kw - ref
        partial = ref + self.fault.fraction * move if move * self.fault.sign < 0 else setpoint_kw
        res: SetpointResult = await self.inner.apply_setpoint(partial)
        res.requested_kw = setpoint_kw
        res.verified = False
        return res

    async def release(self) -> None:
        await self.inner.release()

    async def heartbeat(self) -> None:
        if self._active() and self.fault.mode == "fail":
            raise DeviceError(f"device {self.device_id}: no response (simulated failure)")
        await self.inner.heartbeat()
