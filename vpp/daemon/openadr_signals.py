"""How the VEN reads an OpenADR 2.0b event: what it asks of the fleet, and over which window.

Signals (OpenADR 2.0b signal names and types; the first that applies wins):

* ``LOAD_DISPATCH`` / ``delta``: the change of load asked for, against what the fleet would
  have used without the event. Negative is a reduction (peak shaving: the largest reduction over
  the intervals is the call's ``requested_kw``); positive an increase (valley filling, planned
  like peak shaving with the sign reversed). Intervals that mix both are refused.
* ``LOAD_DISPATCH`` / ``setpoint``: the level the fleet's load is to be held at. The reduction is
  the fleet's current metered load minus that level (largest over the intervals); a level at or
  above the current load asks for nothing and is refused, as is a setpoint before the fleet's
  load is known (nothing polled yet).
* ``SIMPLE`` (type ``level``, 0 normal, 1 moderate, 2 high, 3 special): level 0 asks for
  nothing. Levels 1-3 ask for what the fleet can dependably offer for the event's duration (the
  sum of :func:`bidding.capability.device_capability_kw` over active, participating devices);
  the offer rule then declares what it can (never more than that). With
  ``daemon.openadr.simple_level_kw`` set, a level asks for level x that many kW instead (an
  explicit mapping agreed with the VTN operator).
* Anything else (``LOAD_DISPATCH`` of another type, ``LOAD_CONTROL``, prices, bids) is refused:
  the event is opted out, and the reason logged.

Units: a signal's ``itemBase`` (openleadr's ``measurement``) must be real power; its scale
(``none`` = W, ``k`` = kW, ``M`` = MW) is applied. A signal without one is taken in kW.

Window: the event's active period is snapped out to the programme's market intervals that cover
it (start floored, end ceiled, in the programme's time zone): the programme settles whole
intervals, so an interval the event only partly covers would be measured as a whole interval
delivered in part. Covering it delivers all that was asked, inside intervals that settle; the
event's own window is kept in the stored event's detail (``origin.window``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

#: SI scale codes of an OpenADR ``itemBase`` -> kW per unit of the payload (W based).
SCALE_KW = {"none": 0.001, None: 0.001, "m": 1e-6, "k": 1.0, "M": 1000.0, "G": 1e6}
SIMPLE_LEVELS = (0, 1, 2, 3)


class NotActionable(Exception):
    """The event asks for something the VEN cannot act on; ``reason`` says what (the opt-out
    reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Request:
    """What an event asks of the fleet: ``requested_kw`` (> 0) in ``direction``, and how it was
    read (``reading``, for the event's detail and the log)."""

    requested_kw: float
    direction: str  # peak_shaving | valley_filling
    reading: str


def signals(event: dict[str, Any]) -> list[dict[str, Any]]:
    sig = event.get("event_signals") or []
    return sig["event_signals"] if isinstance(sig, dict) else list(sig)


def _name(sig: dict[str, Any]) -> str:
    return str(sig.get("signal_name", "")).upper()


def _kw_per_unit(sig: dict[str, Any]) -> float:
    m = sig.get("measurement")
    if not m:
        return 1.0  # no itemBase: kW
    name = str(m.get("name", "") if isinstance(m, dict) else getattr(m, "name", ""))
    scale = m.get("scale") if isinstance(m, dict) else getattr(m, "scale", None)
    if name not in ("power_real", "powerReal", "realPower"):
        raise NotActionable(f"{_name(sig)} is in {name or 'an unknown unit'}, not real power")
    if scale not in SCALE_KW:
        raise NotActionable(f"{_name(sig)} has an unknown SI scale {scale!r}")
    return SCALE_KW[scale]


def _values(sig: dict[str, Any]) -> list[float]:
    return [float(i.get("signal_payload", 0) or 0) for i in sig.get("intervals", [])]


def _delta(values: list[float]) -> Request:
    if all(v == 0 for v in values):
        raise NotActionable("LOAD_DISPATCH delta asks for no change (every payload is 0)")
    if any(v < 0 for v in values) and any(v > 0 for v in values):
        raise NotActionable("LOAD_DISPATCH delta mixes reductions and increases in one event")
    if any(v < 0 for v in values):
        kw = -min(values)
        return Request(kw, "peak_shaving", f"LOAD_DISPATCH delta: a reduction of {kw:g} kW")
    kw = max(values)
    return Request(kw, "valley_filling", f"LOAD_DISPATCH delta: an increase of {kw:g} kW")


def _setpoint(values: list[float], fleet_load_kw: float | None) -> Request:
    if fleet_load_kw is None:
        raise NotActionable("LOAD_DISPATCH setpoint: the fleet's load is not known yet (nothing "
                            "polled), so the level cannot be turned into a reduction")
    kw = fleet_load_kw - min(values)
    if kw <= 0:
        raise NotActionable(f"LOAD_DISPATCH setpoint {min(values):g} kW is at or above the "
                            f"fleet's load of {fleet_load_kw:g} kW: nothing to reduce")
    return Request(kw, "peak_shaving", f"LOAD_DISPATCH setpoint {min(values):g} kW against the "
                                       f"fleet's load of {fleet_load_kw:g} kW: {kw:g} kW")


def _simple(values: list[float], simple_level_kw: float, dependable_kw: float) -> Request:
    level = max(values)
    if level not in SIMPLE_LEVELS:
        raise NotActionable(f"SIMPLE level {level:g} is not one of 0, 1, 2, 3")
    if level == 0:
        raise NotActionable("SIMPLE level 0 (normal operation) asks for nothing")
    if simple_level_kw > 0:
        kw = level * simple_level_kw
        return Request(kw, "peak_shaving",
                       f"SIMPLE level {level:g} x simple_level_kw {simple_level_kw:g}: {kw:g} kW")
    if dependable_kw <= 0:
        raise NotActionable(f"SIMPLE level {level:g}: the fleet has no dependable capacity "
                            "for the event")
    return Request(dependable_kw, "peak_shaving",
                   f"SIMPLE level {level:g}: what the fleet can dependably offer, "
                   f"{dependable_kw:g} kW")


def read_request(event: dict[str, Any], *, fleet_load_kw: float | None,
                 dependable_kw: float, simple_level_kw: float = 0.0) -> Request:
    """What ``event`` asks of the fleet (see the module docstring); :class:`NotActionable`
    with the reason when nothing in it can be acted on. Powers in kW."""
    sigs = [s for s in signals(event) if s.get("intervals")]
    dispatch = [s for s in sigs if _name(s) == "LOAD_DISPATCH"]
    simple = [s for s in sigs if _name(s) == "SIMPLE"]
    if dispatch:
        sig = dispatch[0]
        kind = str(sig.get("signal_type", ""))
        values = [v * _kw_per_unit(sig) for v in _values(sig)]
        if kind == "delta":
            return _delta(values)
        if kind == "setpoint":
            return _setpoint(values, fleet_load_kw)
        raise NotActionable(f"LOAD_DISPATCH of type {kind!r}: OpenADR 2.0b dispatches load by "
                            "'setpoint' or 'delta'")
    if simple:
        return _simple(_values(simple[0]), simple_level_kw, dependable_kw)
    names = ", ".join(sorted({f"{_name(s)}/{s.get('signal_type')}" for s in sigs})) or "none"
    raise NotActionable(f"no signal the VEN acts on (it reads LOAD_DISPATCH setpoint/delta and "
                        f"SIMPLE levels; the event has: {names})")


def active_window(event: dict[str, Any]) -> tuple[datetime, datetime]:
    """The event's active period (aware; a naive start is taken as UTC)."""
    period = event["active_period"]
    start: datetime = period["dtstart"]
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    duration: timedelta = period["duration"]
    return start, start + duration


def market_window(start: datetime, end: datetime, interval_minutes: int, timezone: str
                  ) -> tuple[datetime, datetime]:
    """The market intervals covering ``start``-``end``: start floored and end ceiled to
    ``interval_minutes`` in ``timezone`` (the programme's)."""
    zone = ZoneInfo(timezone)
    step = timedelta(minutes=interval_minutes)

    def floor(t: datetime) -> datetime:
        local = t.astimezone(zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight + ((local - midnight) // step) * step

    a = floor(start)
    b = floor(end)
    if b < end:
        b += step
    return a.astimezone(UTC), b.astimezone(UTC)
