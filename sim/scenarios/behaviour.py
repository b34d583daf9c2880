"""How the scenario's devices behave when nobody controls them: opening hours, shifts, charging
habits and battery arbitrage, applied to the device physics models (:mod:`sim.physics`).

The physics stay the adapters engineer's; this module only sets the inputs a real site would
set itself (a building's set temperature and occupancy gains, the outdoor temperature, an
industrial line's load factor on shift, a battery's own time-of-use schedule, when cars arrive)
from the behaviour drawn for each device (:mod:`sim.scenarios.fleet`). All figures come from the
scenario file; the clock hours below are the documented conventions of that file.
"""

from __future__ import annotations

from typing import Any

from sim.scenarios.fleet import INTERNAL_GAIN_OPEN, ScenarioDevice
from vpp.device_kinds import DeviceKind

CLOSED_SET_TEMP_C = 30.0  # a closed building lets the temperature float (setback)
CLOSED_HEAT_SET_TEMP_C = 14.0  # ASSUMPTION: night heating setback when closed
PREHEAT_HOURS = 3  # ASSUMPTION: heating starts this long before opening (optimum start), so the
                   # building is in its winter band when it opens
CLOSED_GAIN = 0.03  # internal gains when closed, share of rated x COP
SHIFT_HOURS = {1: (8, 17), 2: (8, 24), 3: (0, 24)}  # running hours per number of shifts
STANDBY_LOAD_FACTOR = 0.1  # an industrial line off shift
ARBITRAGE_KW_SHARE = 0.5  # battery arbitrage power, share of rating
# battery arbitrage hours: charge in the valley and the afternoon flat period, discharge at the
# midday peak (the hunan-2026 tariff windows), hold through the evening for demand response
ARBITRAGE_CHARGE = ((23, 24), (0, 7), (14, 18))
ARBITRAGE_DISCHARGE = ((11, 14),)


def configure(physics: Any, dev: ScenarioDevice) -> None:
    """Set a freshly built physics model to the device's drawn behaviour (once)."""
    b = dev.behaviour
    kind = dev.kind
    if kind is DeviceKind.EV_CHARGER:
        scale = float(b.get("arrival_scale", 1.0))
        if "arrivals_per_hour" in b:
            physics.arrivals_per_hour = [scale * float(x) for x in b["arrivals_per_hour"]]
        if "need_kwh" in b:
            physics.need_kwh_range = tuple(float(x) for x in b["need_kwh"])
        if "stay_h" in b:
            physics.stay_h_range = tuple(float(x) for x in b["stay_h"])
        physics.sessions = [None] * physics.connectors
    elif kind is DeviceKind.BATTERY:
        if "start_soc_pct" in b:
            physics.soc_pct = float(b["start_soc_pct"])
        if "host_load_share" in b:  # the host site's load, a share of the battery's rating
            physics.host_load_kw = float(b["host_load_share"]) * dev.spec.rated_power_kw
    elif kind is DeviceKind.COMMERCIAL_BUILDING:
        physics.outdoor_amp_c = 0.0
        if "heating_cop" in b:
            physics.heating_cop = float(b["heating_cop"])
    elif kind is DeviceKind.INDUSTRIAL_LOAD:
        physics.load_factor = float(b.get("load_share_running", physics.load_factor))


def _in(hour: int, spans: tuple[tuple[int, int], ...]) -> bool:
    return any(a <= hour < b for a, b in spans)


def update(physics: Any, dev: ScenarioDevice, hour: int, outdoor_temp_c: float) -> None:
    """Apply the behaviour for the interval starting at ``hour`` (local) and the outdoor
    temperature (degC). Cheap: a few attribute writes."""
    b = dev.behaviour
    kind = dev.kind
    if kind is DeviceKind.COMMERCIAL_BUILDING:
        physics.outdoor_mean_c = outdoor_temp_c
        open_h, close_h = int(b.get("open_hour", 0)), int(b.get("close_hour", 24))
        is_open = open_h <= hour < close_h
        set_hvac_mode(physics, dev, outdoor_temp_c)
        if physics.mode == "heat":
            is_open = is_open or open_h - PREHEAT_HOURS <= hour < open_h
        if is_open:
            physics.set_temp_c = (physics.comfort_min_c + physics.comfort_max_c) / 2
            physics.internal_gain_fraction = INTERNAL_GAIN_OPEN
        else:
            physics.set_temp_c = (CLOSED_HEAT_SET_TEMP_C if physics.mode == "heat"
                                  else CLOSED_SET_TEMP_C)
            physics.internal_gain_fraction = CLOSED_GAIN
    elif kind is DeviceKind.INDUSTRIAL_LOAD:
        start, end = SHIFT_HOURS.get(int(b.get("shifts", 3)), (0, 24))
        running = start <= hour < end
        physics.load_factor = (float(b.get("load_share_running", 0.8)) if running
                               else STANDBY_LOAD_FACTOR)
    elif kind is DeviceKind.BATTERY and b.get("arbitrage"):
        p = ARBITRAGE_KW_SHARE * physics.max_charge_kw
        if _in(hour, ARBITRAGE_CHARGE):
            physics.default_kw = p
        elif _in(hour, ARBITRAGE_DISCHARGE):
            physics.default_kw = -p
        else:
            physics.default_kw = 0.0


def set_hvac_mode(physics: Any, dev: ScenarioDevice, outdoor_temp_c: float) -> None:
    """Cooling, heat-pump heating or no electric HVAC, and the comfort band that goes with it.

    Below the segment's ``heating_below_c`` (outdoor, degC) a building whose drawn ``heating``
    flag is set heats with its heat pump in the ``heating_comfort_min_c..heating_comfort_max_c``
    band; one without electric heating (gas boiler, or none) draws no HVAC power. Above it (or
    with no ``heating_below_c`` in the scenario) the building cools in its enrolled comfort band
    (the device's ``comfort_min_c..comfort_max_c``)."""
    b = dev.behaviour
    below = b.get("heating_below_c")
    if below is not None and outdoor_temp_c < float(below):
        if b.get("heating"):
            physics.mode = "heat"
            physics.comfort_min_c = float(b.get("heating_comfort_min_c", 18.0))
            physics.comfort_max_c = float(b.get("heating_comfort_max_c", 22.0))
        else:
            physics.mode = "off"
        return
    physics.mode = "cool"
    physics.comfort_min_c = float(dev.spec.params.get("comfort_min_c", 22.0))
    physics.comfort_max_c = float(dev.spec.params.get("comfort_max_c", 27.0))


def meter_energy_kwh(physics: Any, kind: DeviceKind) -> float:
    """The device's net energy counter (kWh imported minus exported): what a revenue meter at
    its connection point integrates."""
    if kind is DeviceKind.BATTERY:
        return float(physics.charged_kwh - physics.discharged_kwh)
    return float(physics.energy_kwh)
