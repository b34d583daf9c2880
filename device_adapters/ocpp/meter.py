"""Meter values of OCPP 1.6J (``MeterValues``, ``StopTransaction``) and 2.0.1 (``MeterValues``,
``TransactionEvent``) as one typed sample (pure).

Measurands read: ``Power.Active.Import`` (minus ``Power.Active.Export``), in W or kW;
``Energy.Active.Import.Register`` in Wh or kWh (the default measurand and unit of a sampled value
without them, in both versions); ``SoC`` in %. Phase values are summed when no total is given.
2.0.1 values carry ``unitOfMeasure`` with a power-of-ten ``multiplier``. A value that is not a
finite number is refused with :class:`MeterValueError` naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

POWER_IMPORT = "Power.Active.Import"
POWER_EXPORT = "Power.Active.Export"
ENERGY_IMPORT = "Energy.Active.Import.Register"
SOC = "SoC"
_TO_KILO = {"W": 1e-3, "kW": 1.0, "Wh": 1e-3, "kWh": 1.0, "Percent": 1.0}


class MeterValueError(ValueError):
    """A sampled value that cannot be read (not a number, unknown unit)."""


@dataclass(frozen=True)
class MeterSample:
    """One metered instant of one connector: kW (> 0 consumption), kWh (cumulative), %."""

    ts: datetime
    power_kw: float | None
    energy_kwh: float | None
    soc_pct: float | None


def parse_timestamp(text: str) -> datetime:
    """An OCPP date-time (RFC 3339, ``Z`` or an offset); naive values are refused."""
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MeterValueError(f"timestamp {text!r} is not an RFC 3339 date-time") from None
    if ts.tzinfo is None:
        raise MeterValueError(f"timestamp {text!r} has no time zone")
    return ts


def _number(sv: dict[str, Any]) -> float:
    try:
        value = float(sv["value"])
    except (KeyError, TypeError, ValueError):
        raise MeterValueError(f"sampled value {sv.get('value')!r} is not a number") from None
    if not math.isfinite(value):
        raise MeterValueError(f"sampled value {sv.get('value')!r} is not finite")
    return value


def _unit(sv: dict[str, Any], default: str) -> tuple[str, int]:
    uom = sv.get("unit_of_measure")  # 2.0.1
    if isinstance(uom, dict):
        return str(uom.get("unit", default)), int(uom.get("multiplier", 0) or 0)
    return str(sv.get("unit") or default), 0


def _kilo(sv: dict[str, Any], default_unit: str) -> float:
    unit, multiplier = _unit(sv, default_unit)
    if unit not in _TO_KILO:
        raise MeterValueError(f"{sv.get('measurand', ENERGY_IMPORT)} in unknown unit {unit!r}")
    return _number(sv) * 10.0 ** multiplier * _TO_KILO[unit]


def _total(values: list[dict[str, Any]], default_unit: str) -> float | None:
    """The total over phases: the value without a phase if any, else the sum of L1..L3."""
    if not values:
        return None
    whole = [v for v in values if not v.get("phase")]
    if whole:
        return _kilo(whole[0], default_unit)
    return sum(_kilo(v, default_unit) for v in values if str(v["phase"]) in ("L1", "L2", "L3"))


def parse_meter_value(meter_value: dict[str, Any]) -> MeterSample:
    """One ``MeterValue`` (snake_case keys, as the ``ocpp`` library hands them over)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for sv in meter_value.get("sampled_value", []):
        by.setdefault(str(sv.get("measurand") or ENERGY_IMPORT), []).append(sv)
    imp, exp = _total(by.get(POWER_IMPORT, []), "W"), _total(by.get(POWER_EXPORT, []), "W")
    power = None if imp is None and exp is None else (imp or 0.0) - (exp or 0.0)
    soc = by.get(SOC)
    return MeterSample(ts=parse_timestamp(str(meter_value.get("timestamp", ""))),
                       power_kw=power, energy_kwh=_total(by.get(ENERGY_IMPORT, []), "Wh"),
                       soc_pct=_number(soc[0]) if soc else None)


def latest_sample(meter_values: list[dict[str, Any]]) -> MeterSample | None:
    """The newest of several ``MeterValue`` entries (None for an empty list)."""
    samples = [parse_meter_value(mv) for mv in meter_values]
    return max(samples, key=lambda s: s.ts) if samples else None
