"""The full-stack run's OCPP chargers: which of the sample's EV chargers speak OCPP, how an owner
registers them (``POST /api/v1/charge-points``), the simulated charge points that run them in
the simulator process, and what they delivered.

Which ones: in each segment with an ``ocpp_share`` (a scenario value, with its source or
ASSUMPTION in the scenario file), that share of the segment's sampled chargers, drawn with the
scenario's seed; OCPP 1.6J and 2.0.1 alternate over them in fleet order. Each is one charge
point of one connector, its identity the scenario device's name; the rest of the sample stays
on the Modbus gateways. The charge points run the same EV physics as the Modbus chargers
(:func:`sim.physics.make_physics` with the scenario behaviour and the history's seed) on the
same :class:`~sim.fullstack_fleet.SharedClock`, in the simulator process, never in the daemon.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sim.device import Clock
from sim.ocpp_chargepoint import SimChargePoint
from sim.physics import make_physics
from sim.physics.ev_charger import EvChargerModel
from sim.scenarios import behaviour
from sim.scenarios.fleet import ScenarioDevice
from sim.scenarios.scenario import Scenario
from vpp.errors import VppError
from vpp.ocpp_gateways import connector_devices

#: ASSUMPTION: a charge point's meter values period (OCPP MeterValueSampleInterval), simulated
#: seconds; the central system reads a connector as failed after ``3 x`` this without one
METER_PERIOD_S = 60.0
VERSIONS = ("1.6", "2.0.1")


@dataclass(frozen=True)
class ChargePointSpec:
    """One sampled EV charger run as an OCPP charge point (connector 1)."""

    device: ScenarioDevice
    version: str  # "1.6" | "2.0.1"

    @property
    def identity(self) -> str:
        return self.device.spec.name

    @property
    def enrolled_name(self) -> str:
        """The connector device's name as the daemon registers it."""
        return str(connector_devices(self.device.site, self.identity, [1],
                                     self.device.spec.rated_power_kw)[0]["name"])


def pick_charge_points(scn: Scenario, devices: list[ScenarioDevice]) -> list[ChargePointSpec]:
    """The sampled chargers that speak OCPP (module docstring); deterministic."""
    shares = {s.name: s.ocpp_share for s in scn.segments if s.ocpp_share > 0}
    rng = np.random.default_rng([scn.scenario.seed, 21])
    picked: list[ScenarioDevice] = []
    for seg, share in shares.items():
        devs = [d for d in devices if d.segment == seg]
        k = round(share * len(devs))
        picked.extend(devs[i] for i in rng.permutation(len(devs))[:k])
    picked.sort(key=lambda d: d.index)
    return [ChargePointSpec(d, VERSIONS[k % 2]) for k, d in enumerate(picked)]


class RestApi(Protocol):
    async def call(self, method: str, path: str, body: Any = None) -> Any: ...


async def enrol_charge_points(api: RestApi, specs: list[ChargePointSpec],
                              owner_ids: Mapping[str, int], work_dir: Path,
                              report: Callable[[str, int, int], None]) -> Path:
    """Register every charge point through the REST API as an operator on its owner's behalf;
    returns the file of the passwords the daemon answered (identity -> password, mode 0600),
    which the simulator process reads."""
    passwords: dict[str, str] = {}
    for k, cp in enumerate(specs):
        d = cp.device
        got = await api.call("POST", "/api/v1/charge-points", {
            "owner_id": owner_ids[d.owner], "site": d.site, "identity": cp.identity,
            "connector_ids": [1], "rated_power_kw": d.spec.rated_power_kw})
        passwords[cp.identity] = got["password"]
        report("registering OCPP charge points", k + 1, len(specs))
    path = work_dir / "charge-points.json"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(passwords, fh)
    return path


async def wait_booted(api: RestApi, n: int, report: Callable[[str, int, int], None],
                      timeout_s: float, error: type[VppError]) -> None:
    """Until ``n`` OCPP gateways (port 0) are enrolled by their charge point's boot."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        items = await api.call("GET", "/api/v1/gateways")
        items = items["items"] if isinstance(items, dict) else items
        booted = sum(1 for g in items if g["port"] == 0 and g["enrolment_state"] == "active")
        report("OCPP charge points booting", booted, n)
        if booted >= n:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise error(f"{booted} of {n} OCPP charge points booted within {timeout_s:g} s "
                        "(see simulators.log in the work directory)")
        await asyncio.sleep(0.5)


def charger_physics(cp: ChargePointSpec, seed: int) -> EvChargerModel:
    """The charger's physics as the Modbus chargers' (the scenario behaviour, ``seed``)."""
    d = cp.device
    physics = make_physics(d.kind, d.spec.rated_power_kw, d.spec.params, seed=seed)
    assert isinstance(physics, EvChargerModel)
    behaviour.configure(physics, d)
    return physics


def build_charge_points(specs: list[ChargePointSpec], passwords: Mapping[str, str],
                        clock: Clock, accel: float,
                        seed_of: Callable[[ScenarioDevice], int]) -> list[SimChargePoint]:
    """The simulated charge points of ``specs`` (the simulator process's side), each
    connector's physics seeded by ``seed_of`` (the history's seed). Their physics are replaced
    by the history's last state before the clock starts (:mod:`sim.fleet_process`)."""
    missing = [cp.identity for cp in specs if cp.identity not in passwords]
    if missing:
        raise VppError(f"no password for {len(missing)} charge point(s), first {missing[0]}")
    return [SimChargePoint(
        cp.identity, passwords[cp.identity], cp.version, connectors=1,
        rated_kw=cp.device.spec.rated_power_kw, clock=clock, meter_period_s=METER_PERIOD_S,
        rate=lambda: accel, physics={1: charger_physics(cp, seed_of(cp.device))})
        for cp in specs]


@dataclass(frozen=True)
class ChargerGroup:
    """The EV chargers of one protocol in the settled event, by the daemon's own per-device
    attribution (``GET /api/v1/owner/events/{id}/devices``), kWh over the event intervals."""

    protocol: str  # "ocpp" | "modbus"
    chargers: int  # in the sample
    settled: int  # in a settled owner's share
    baseline_kwh: float
    metered_kwh: float
    response_kwh: float
    unmetered_intervals: int

    def text(self) -> str:
        pct = 100.0 * self.response_kwh / self.baseline_kwh if self.baseline_kwh else 0.0
        return (f"{self.chargers} over {self.protocol.upper() if self.protocol == 'ocpp' else 'Modbus'}"
                f" ({self.settled} settled): baseline {self.baseline_kwh:.1f} kWh, metered "
                f"{self.metered_kwh:.1f} kWh, response {self.response_kwh:.1f} kWh ({pct:.0f}%)")


async def charger_groups(api: RestApi, event_id: int, settled_owners: list[int],
                         ocpp_names: set[str], n_ocpp: int, n_modbus: int) -> list[ChargerGroup]:
    """OCPP and Modbus chargers' baseline, metered and response energy in the event, summed
    over the settled owners' per-device contributions."""
    rows: list[dict[str, Any]] = []
    for owner in settled_owners:
        got = await api.call("GET", f"/api/v1/owner/events/{event_id}/devices?owner_id={owner}")
        rows.extend(d for d in got["devices"] if d["kind"] == "ev_charger")
    out = []
    for protocol, n in (("ocpp", n_ocpp), ("modbus", n_modbus)):
        mine = [d for d in rows if (d["name"] in ocpp_names) == (protocol == "ocpp")]
        out.append(ChargerGroup(
            protocol, n, len(mine), round(sum(d["baseline_kwh"] for d in mine), 3),
            round(sum(d["metered_kwh"] for d in mine), 3),
            round(sum(d["response_kwh"] for d in mine), 3),
            sum(int(d["unmetered_intervals"]) for d in mine)))
    return out
