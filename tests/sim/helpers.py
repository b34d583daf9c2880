"""Shared helpers for tests that run simulated gateways (real pymodbus servers on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from device_adapters.adapter import ProfileAdapter
from device_adapters.factory import make_adapter
from device_adapters.modbus_client import GatewayClient
from sim.device import Clock, SimulatedDevice
from sim.fleet import make_device
from sim.server import SimGateway
from tests.conftest import free_port
from vpp.device_kinds import DeviceKind


@dataclass(frozen=True)
class Case:
    profile: str
    kind: DeviceKind
    rated_kw: float
    min_kw: float
    max_kw: float
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.profile


CASES = [
    Case("huawei-luna2000", DeviceKind.BATTERY, 5.0, -5.0, 5.0, {"capacity_kwh": 15.0}),
    Case("sungrow-sh", DeviceKind.BATTERY, 5.0, -5.0, 5.0, {"capacity_kwh": 9.6}),
    Case("sunspec", DeviceKind.BATTERY, 10.0, -10.0, 10.0, {"capacity_kwh": 20.0}),
    Case("alfen-ng9xx", DeviceKind.EV_CHARGER, 22.0, 0.0, 22.0,
         {"max_charge_kw_per_connector": 22.0}),
    Case("keba-p30", DeviceKind.EV_CHARGER, 22.0, 0.0, 22.0, {"max_charge_kw_per_connector": 22.0}),
    Case("coolmaster-vrf", DeviceKind.COMMERCIAL_BUILDING, 800.0, 200.0, 800.0,
         {"comfort_min_c": 24.0, "comfort_max_c": 27.0, "max_shed_kw": 300.0}),
    Case("industrial-plc", DeviceKind.INDUSTRIAL_LOAD, 2000.0, 800.0, 2000.0,
         {"max_curtail_kw": 1200.0, "max_curtail_minutes": 90}),
]
BY_PROFILE = {c.profile: c for c in CASES}


def sim_device(case: Case, clock: Clock, unit: int = 1) -> SimulatedDevice:
    return make_device(case.profile, case.kind, unit, case.rated_kw, case.params, clock, seed=unit)


@asynccontextmanager
async def serve(devices: dict[int, SimulatedDevice]) -> AsyncIterator[SimGateway]:
    gw = SimGateway(devices, port=free_port())
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


def client_for(gw: SimGateway, timeout_s: float = 0.5, retries: int = 1) -> GatewayClient:
    return GatewayClient(gw.host, gw.port, timeout_s=timeout_s, retries=retries,
                         backoff_base_s=0.01)


async def adapter_for(case: Case, client: GatewayClient, unit: int = 1,
                      device_id: int = 1, **overrides: Any) -> ProfileAdapter:
    kw = {"rated_power_kw": case.rated_kw, "min_setpoint_kw": case.min_kw,
          "max_setpoint_kw": case.max_kw} | overrides
    return await make_adapter(client, device_id=device_id, unit_id=unit, kind=case.kind,
                              profile=case.profile, params=case.params, **kw)
