"""SunSpec discovery and maps from pysunspec2's model definitions (its JSON), I/O via our client.

A SunSpec device starts with the marker ``SunS`` at holding register 40000 (or 0 / 50000),
followed by a chain of models (ID, L, then L registers) ending with ID 0xFFFF. We read the chain,
then build a :class:`~device_adapters.profile.Profile` from the pysunspec2 JSON definitions of
the models found (point offsets, types, scale-factor points, access), so SunSpec batteries go
through the same adapter as profile-based devices. pysunspec2's own Modbus stack is synchronous;
we use only its model definitions.

Batteries (:func:`build_battery_profile`). Battery control uses storage model 124: charge = ``StorCtl_Mod`` bit 0 + ``InWRte`` (% of
``WChaMax``), discharge = bit 1 + ``OutWRte`` (also taken as % of ``WChaMax``, model 124 has no
separate discharge maximum), each with ``InOutWRte_RvrtTms`` as the device's revert timer
(watchdog). Power and SoC come from model 802 (``W`` taken as + charge: check a real device's
convention before enrolling it; ``SoC``).

PV inverters (:func:`build_pv_profile`): power from the inverter model (101 single phase, 102
split phase or 103 three phase; ``W`` + output, so measured with sign -1: generation is
export), curtailment by immediate-controls model 123: ``WMaxLimPct`` (% of model 121's
``WMax``) with ``WMaxLim_Ena`` = 1, and ``WMaxLimPct_RvrtTms`` as the revert timer (watchdog:
unfed, the inverter drops the limit, back to unlimited). Release writes 100% and disables the
limit. The register layout is the SunSpec information model's; no real inverter's map was
checked here (unverified on hardware).

:func:`build_profile` picks by the models the scan found (and the device's declared kind where
a hybrid inverter offers both).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

import sunspec2

from device_adapters.profile import Profile, parse_profile
from vpp.device_kinds import DeviceKind
from vpp.errors import DeviceError

SUNSPEC_MARKER = "SunS"
BASE_ADDRESSES = (40000, 0, 50000)
END_MODEL_ID = 0xFFFF
MAX_MODELS = 64
REVERT_TIMEOUT_S = 60

_TYPES = {
    "uint16": "uint16", "enum16": "uint16", "bitfield16": "uint16", "int16": "int16",
    "sunssf": "int16", "count": "uint16", "uint32": "uint32", "enum32": "uint32",
    "bitfield32": "uint32", "acc32": "uint32", "int32": "int32", "float32": "float32",
    "string": "string", "ipaddr": "uint32",
}
_UNITS = {"W": "W", "Wh": "Wh", "Secs": "s", "%WHRtg": "%", "%": "%", "% WChaMax": "%",
          " % WChaMax": "%", "% WDisChaMax": "%", "% WChaMax/sec": "%"}


@cache
def model_definition(model_id: int) -> dict[str, Any]:
    """The pysunspec2 JSON definition of a model (raises DeviceError if unknown)."""
    path = os.path.join(os.path.dirname(sunspec2.__file__), "models", "json",
                        f"model_{model_id}.json")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DeviceError(f"SunSpec model {model_id} is not defined in pysunspec2") from None


def model_points(model_id: int) -> list[dict[str, Any]]:
    """Top-level points of a model (repeating groups are not used by our battery models)."""
    return list(model_definition(model_id)["group"]["points"])


def model_length(model_id: int) -> int:
    """L: registers after the ID and L header."""
    return sum(int(p.get("size", 1)) for p in model_points(model_id)) - 2


def _points_for(model_id: int, start: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    offset = 0
    for p in model_points(model_id):
        size = int(p.get("size", 1))
        ptype = p["type"]
        if ptype != "pad" and ptype in _TYPES:
            entry: dict[str, Any] = {"address": start + offset, "type": _TYPES[ptype]}
            if ptype == "string":
                entry["length"] = size
            if p.get("sf"):
                entry["scale_sf"] = f"{model_id}.{p['sf']}"
            unit = _UNITS.get(p.get("units", ""), "")
            entry["unit"] = unit
            if p.get("access") == "RW":
                entry["access"] = "rw"
            if p.get("desc"):
                entry["description"] = str(p["desc"])[:200]
            out[f"{model_id}.{p['name']}"] = entry
        offset += size
    return out


#: inverter models (single, split, three phase) a PV profile reads its power from
INVERTER_MODELS = (101, 102, 103)


def _header(chain: list[tuple[int, int]], wanted: set[int],
            end_address: int | None) -> dict[str, dict[str, Any]]:
    """The marker, the points of the ``wanted`` models in ``chain`` and the end marker."""
    points: dict[str, dict[str, Any]] = {}
    first = min(a for _, a in chain)
    points["marker"] = {"address": first - 2, "type": "string", "length": 2,
                        "default": SUNSPEC_MARKER}
    for model_id, addr in chain:
        if model_id in wanted:
            points.update(_points_for(model_id, addr))
            points[f"{model_id}.ID"]["default"] = model_id
            points[f"{model_id}.L"]["default"] = model_length(model_id)
    if end_address is not None:
        points["end.ID"] = {"address": end_address, "type": "uint16", "default": END_MODEL_ID}
        points["end.L"] = {"address": end_address + 1, "type": "uint16", "default": 0}
    return points


def build_battery_profile(
    chain: list[tuple[int, int]],
    *,
    name: str = "sunspec",
    end_address: int | None = None,
    defaults: dict[str, float | str] | None = None,
) -> Profile:
    """A battery profile from a SunSpec chain ``[(model_id, address_of_ID), ...]``.

    Needs model 1, 802 and 124. ``defaults`` (simulators) gives initial register values.
    """
    ids = [m for m, _ in chain]
    for needed in (1, 802, 124):
        if needed not in ids:
            raise DeviceError(
                f"SunSpec device lacks model {needed} (found {', '.join(map(str, ids)) or 'none'})"
            )
    points = _header(chain, {1, 802, 124}, end_address)
    # Percentages of WChaMax; safe write limits; plausibility.
    for p in ("124.InWRte", "124.OutWRte"):
        points[p].update(percent_of="124.WChaMax", min=-100, max=100)
    points["124.StorCtl_Mod"].update(min=0, max=3)
    points["124.InOutWRte_RvrtTms"].update(min=0, max=3600)
    points["802.SoC"].update(valid_min=0, valid_max=100)
    for key, value in (defaults or {}).items():
        points[key]["default"] = value
    data = {
        "name": name,
        "kind": DeviceKind.BATTERY.value,
        "vendor": "SunSpec",
        "description": "SunSpec storage: models 1 + 802 + 124 (revert timer)",
        "source": "sunspec/models json via pysunspec2",
        "max_gap": 8,
        "points": points,
        "measure": {"power_kw": {"point": "802.W"}, "soc_pct": {"point": "802.SoC"}},
        "identity": {"points": ["1.Mn", "1.Md", "1.SN"]},
        "control": {
            "positive": [
                {"point": "124.InWRte", "value": "magnitude"},
                {"point": "124.InOutWRte_RvrtTms", "value": REVERT_TIMEOUT_S},
                {"point": "124.StorCtl_Mod", "value": 1},
            ],
            "negative": [
                {"point": "124.OutWRte", "value": "magnitude"},
                {"point": "124.InOutWRte_RvrtTms", "value": REVERT_TIMEOUT_S},
                {"point": "124.StorCtl_Mod", "value": 2},
            ],
            "release": [{"point": "124.StorCtl_Mod", "value": 0}],
        },
        "heartbeat": {"mode": "rewrite", "lease_s": 1200},
        "watchdog": {
            "mode": "timer", "timeout_point": "124.InOutWRte_RvrtTms",
            "feed_points": ["124.InWRte", "124.OutWRte"], "fallback": "release",
        },
    }
    return parse_profile(data, f"SunSpec chain {ids}")


def build_pv_profile(
    chain: list[tuple[int, int]],
    *,
    name: str = "sunspec",
    end_address: int | None = None,
    defaults: dict[str, float | str] | None = None,
) -> Profile:
    """A PV inverter profile from a SunSpec chain (module docstring): needs models 1, 121,
    123 and one of 101/102/103 (the first found). ``defaults``: initial register values
    (simulators)."""
    ids = [m for m, _ in chain]
    inverter = next((m for m in ids if m in INVERTER_MODELS), None)
    missing = [str(m) for m in (1, 121, 123) if m not in ids]
    if inverter is None:
        missing.append("101/102/103")
    if missing:
        raise DeviceError(f"SunSpec PV inverter lacks model {', '.join(missing)} "
                          f"(found {', '.join(map(str, ids)) or 'none'})")
    assert inverter is not None
    points = _header(chain, {1, inverter, 121, 123}, end_address)
    points["123.WMaxLimPct"].update(percent_of="121.WMax", min=0, max=100)
    points["123.WMaxLimPct_RvrtTms"].update(min=0, max=3600)
    points["123.WMaxLim_Ena"].update(min=0, max=1)
    for key, value in (defaults or {}).items():
        points[key]["default"] = value
    limit = [{"point": "123.WMaxLimPct", "value": "magnitude"},
             {"point": "123.WMaxLimPct_RvrtTms", "value": REVERT_TIMEOUT_S},
             {"point": "123.WMaxLim_Ena", "value": 1}]
    data = {
        "name": name,
        "kind": DeviceKind.PV_INVERTER.value,
        "vendor": "SunSpec",
        "description": f"SunSpec PV inverter: models 1 + {inverter} + 121 + 123 (revert timer)",
        "source": "sunspec/models json via pysunspec2 (unverified on hardware)",
        "max_gap": 8,
        "points": points,
        "measure": {"power_kw": {"point": f"{inverter}.W", "sign": -1}},
        "identity": {"points": ["1.Mn", "1.Md", "1.SN"]},
        # setpoints are <= 0 (minus the output ceiling): the negative branch, and 0 (no output)
        "control": {"negative": limit, "zero": limit,
                    "release": [{"point": "123.WMaxLimPct", "value": 100},
                                {"point": "123.WMaxLim_Ena", "value": 0}]},
        "heartbeat": {"mode": "rewrite", "lease_s": 1200},
        "watchdog": {
            "mode": "timer", "timeout_point": "123.WMaxLimPct_RvrtTms",
            "feed_points": ["123.WMaxLimPct", "123.WMaxLim_Ena"], "fallback": "release",
        },
    }
    return parse_profile(data, f"SunSpec chain {ids}")


def build_profile(chain: list[tuple[int, int]], *, kind: DeviceKind | None = None,
                  end_address: int | None = None) -> Profile:
    """The profile of a scanned chain: a PV inverter's for ``kind`` PV (or, with no kind, a
    chain with model 123 and no storage model 124), else a battery's."""
    ids = {m for m, _ in chain}
    pv = (kind is DeviceKind.PV_INVERTER
          or (kind is None and 123 in ids and 124 not in ids))
    if pv:
        return build_pv_profile(chain, end_address=end_address)
    return build_battery_profile(chain, end_address=end_address)


ReadFn = Callable[[int, int], Awaitable[list[int]]]  # (address, count) -> holding registers


async def scan(read: ReadFn) -> tuple[list[tuple[int, int]], int]:
    """Find the marker and walk the model chain. Returns ([(model_id, address)], end_address).

    ``read`` performs one holding-register read (it may raise; an exception reply at a base
    address just means "not here"). Raises :class:`DeviceError` when no SunSpec map is found
    or the chain is malformed.
    """
    base = None
    for candidate in BASE_ADDRESSES:
        try:
            regs = await read(candidate, 2)
        except DeviceError as exc:
            if getattr(exc, "exception_code", None) is None:
                raise
            continue
        if bytes(b for r in regs for b in r.to_bytes(2, "big")) == SUNSPEC_MARKER.encode():
            base = candidate
            break
    if base is None:
        raise DeviceError("no SunSpec marker 'SunS' at 40000, 0 or 50000")
    chain: list[tuple[int, int]] = []
    addr = base + 2
    for _ in range(MAX_MODELS):
        model_id, length = await read(addr, 2)
        if model_id == END_MODEL_ID:
            return chain, addr
        if length == 0 or addr + 2 + length > 65535:
            raise DeviceError(f"malformed SunSpec chain: model {model_id} at {addr} has L={length}")
        chain.append((model_id, addr))
        addr += 2 + length
    raise DeviceError(f"SunSpec chain longer than {MAX_MODELS} models")
