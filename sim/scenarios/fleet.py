"""The city fleet, drawn from the scenario's segments with a fixed seed.

Each segment gives a population (sites or devices), an enrolled share, and distributions of
ratings, parameters and behaviour. The result is a list of :class:`ScenarioDevice`: an enrolment
spec (:class:`vpp.config.DeviceSpec`, so limits and kind parameters are validated exactly as for a
real owner) plus the owner, site and drawn behaviour the simulated device follows.

Parameter conventions (documented in the scenario file): ``<x>_share`` -> ``<x>_kw`` = share x
rated power; ``duration_h`` -> battery ``capacity_kwh``; ``time_constant_h`` -> a building's
thermal resistance (degC per kW thermal, sized so that the open building's design electric load
``load_share_open`` x rated, at COP 3 and with internal gains, holds a 10 degC indoor/outdoor
difference) and capacitance (tau / R): :func:`vpp.device_kinds.design_thermal_params`, the rule
the product sizes a building enrolled without them by.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.scenarios.scenario import Choice, Lognormal, Scenario, Segment, Uniform, Value
from vpp.config import DeviceSpec, GatewaySpec, OwnerSpec, SiteSpec
from vpp.device_kinds import DESIGN_LOAD_SHARE_OPEN, DeviceKind, design_thermal_params
from vpp.device_kinds import INTERNAL_GAIN_OPEN as INTERNAL_GAIN_OPEN  # sim.scenarios.behaviour


def draw(value: Value, rng: np.random.Generator) -> Any:
    """One draw from a distribution (or the fixed value itself)."""
    if isinstance(value, Lognormal):
        x = float(rng.lognormal(np.log(value.median), value.sigma))
        return float(min(max(x, value.min), value.max))
    if isinstance(value, Uniform):
        return float(rng.uniform(value.low, value.high))
    if isinstance(value, Choice):
        p = None
        if value.weights is not None:
            w = np.asarray(value.weights, dtype=float)
            p = w / w.sum()
        v = value.values[int(rng.choice(len(value.values), p=p))]
        return v.item() if isinstance(v, np.generic) else v
    return value


@dataclass(frozen=True)
class ScenarioDevice:
    """One enrolled device of the simulated city: its spec, who owns it, how it behaves."""

    index: int  # 0..N-1, stable for a given scenario and seed
    segment: str
    owner: str
    site: str
    spec: DeviceSpec
    behaviour: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> DeviceKind:
        return self.spec.kind


@dataclass(frozen=True)
class Fleet:
    devices: list[ScenarioDevice]
    seed: int

    def __len__(self) -> int:
        return len(self.devices)

    def __iter__(self) -> Iterator[ScenarioDevice]:
        return iter(self.devices)

    def rated_kw_by_segment(self) -> dict[str, float]:
        out: defaultdict[str, float] = defaultdict(float)
        for d in self.devices:
            out[d.segment] += d.spec.rated_power_kw
        return dict(out)

    def count_by_segment(self) -> dict[str, int]:
        return dict(Counter(d.segment for d in self.devices))

    def owners(self) -> list[str]:
        return sorted({d.owner for d in self.devices})

    def sample(self, n: int, seed: int = 0) -> Fleet:
        """A stratified subset of about ``n`` devices (each segment keeps its share, at least
        one device); used for small tests and the full-stack scale."""
        if n >= len(self.devices):
            return self
        rng = np.random.default_rng(seed)
        by_seg: dict[str, list[ScenarioDevice]] = {}
        for d in self.devices:
            by_seg.setdefault(d.segment, []).append(d)
        picked: list[ScenarioDevice] = []
        for devs in by_seg.values():
            k = max(1, round(n * len(devs) / len(self.devices)))
            idx = np.sort(rng.choice(len(devs), size=min(k, len(devs)), replace=False))
            picked.extend(devs[i] for i in idx)
        picked.sort(key=lambda d: d.index)
        return Fleet(picked, self.seed)

    def owner_specs(self, host: str = "127.0.0.1", first_port: int = 20000,
                    units_per_gateway: int = 247) -> list[OwnerSpec]:
        """The fleet as enrolment configuration: one gateway per site (split every
        ``units_per_gateway`` devices), consecutive ports from ``first_port``."""
        owners: dict[str, dict[str, list[ScenarioDevice]]] = {}
        for d in self.devices:
            owners.setdefault(d.owner, {}).setdefault(d.site, []).append(d)
        port = first_port
        out: list[OwnerSpec] = []
        for owner, sites in owners.items():
            site_specs = []
            for site, devs in sites.items():
                gws = []
                for k in range(0, len(devs), units_per_gateway):
                    chunk = devs[k:k + units_per_gateway]
                    specs = [d.spec.model_copy(update={"unit_id": u + 1})
                             for u, d in enumerate(chunk)]
                    gws.append(GatewaySpec(host=host, port=port, devices=specs))
                    port += 1
                site_specs.append(SiteSpec(name=site, gateways=gws))
            out.append(OwnerSpec(name=owner, sites=site_specs))
        return out


def _params(seg: Segment, rated_kw: float, drawn: dict[str, Any],
            behaviour: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, v in drawn.items():
        if key.endswith("_share"):
            params[key.removesuffix("_share") + "_kw"] = round(float(v) * rated_kw, 3)
        elif key == "duration_h":
            params["capacity_kwh"] = round(float(v) * rated_kw, 3)
        elif key == "time_constant_h":
            th = design_thermal_params(
                rated_kw, float(v),
                float(behaviour.get("load_share_open", DESIGN_LOAD_SHARE_OPEN)))
            params["thermal_resistance_c_per_kw"] = th.resistance_c_per_kw
            params["thermal_capacitance_kwh_per_c"] = th.capacitance_kwh_per_c
        else:
            params[key] = v
    if seg.kind is DeviceKind.EV_CHARGER:
        connectors = int(params.get("connectors", 1))
        params["connectors"] = connectors
        params["max_charge_kw_per_connector"] = round(rated_kw / connectors, 3)
    return params


def _limits(seg: Segment, rated_kw: float) -> tuple[float, float]:
    share = seg.min_setpoint_share
    return round(share * rated_kw, 3), rated_kw


def generate_fleet(scn: Scenario, seed: int | None = None) -> Fleet:
    """Draw the whole enrolled fleet of the scenario (deterministic for a seed)."""
    seed = scn.scenario.seed if seed is None else seed
    devices: list[ScenarioDevice] = []
    for seg_no, seg in enumerate(scn.segments):
        # one stream per segment: editing one segment leaves the others' draws unchanged
        rng = np.random.default_rng([seed, seg_no])
        n = seg.enrolled
        site_no = 0
        made = 0
        sites_left = n if seg.counts == "sites" else None
        while (sites_left is not None and sites_left > 0) or (sites_left is None and made < n):
            site_no += 1
            per_site = int(draw(seg.devices_per_site, rng))
            if sites_left is None:
                per_site = min(per_site, n - made)
            else:
                sites_left -= 1
            site = f"{seg.name}-{site_no:04d}"
            if seg.owner_pool:
                owner = f"{seg.name} owner {int(rng.integers(seg.owner_pool)) + 1:03d}"
            else:
                owner = f"{seg.name} owner {site_no:04d}"
            for unit in range(per_site):
                rated = round(float(draw(seg.rated_power_kw, rng)), 3)
                behaviour = {k: draw(v, rng) for k, v in seg.behaviour.items()}
                if seg.arrivals_per_hour is not None:
                    behaviour["arrivals_per_hour"] = list(seg.arrivals_per_hour)
                drawn = {k: draw(v, rng) for k, v in seg.params.items()}
                lo, hi = _limits(seg, rated)
                spec = DeviceSpec(
                    name=f"{site}-{unit + 1}", kind=seg.kind, unit_id=unit + 1,
                    profile=seg.profile, rated_power_kw=rated, min_setpoint_kw=lo,
                    max_setpoint_kw=hi, params=_params(seg, rated, drawn, behaviour),
                )
                devices.append(ScenarioDevice(len(devices), seg.name, owner, site, spec, behaviour))
                made += 1
    return Fleet(devices, seed)
