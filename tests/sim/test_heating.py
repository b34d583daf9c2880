"""Winter at city scale: buildings heat with their heat pumps (or draw nothing when heated by
other means), so winter calls can shed heating load and comfort violations mean something."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from sim.physics.building import BuildingModel
from sim.plant import CityPlant
from sim.scenarios import load_scenario
from sim.scenarios.behaviour import set_hvac_mode
from sim.scenarios.fleet import ScenarioDevice, generate_fleet
from vpp.device_kinds import DeviceKind

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")


def _buildings(n: int = 60) -> list[ScenarioDevice]:
    scn = load_scenario(ROOT / "config/scenarios/zhuzhou-2025.toml")
    devs = [d for d in generate_fleet(scn).devices if d.kind is DeviceKind.COMMERCIAL_BUILDING]
    return devs[:: max(1, len(devs) // n)][:n]


def _indoor_temps_c(plant: CityPlant) -> list[float]:
    """Each building's indoor temperature now (degC): every one has reported after a step."""
    out: list[float] = []
    for s in plant.states:
        assert s is not None and s.indoor_temp_c is not None, "a building reports its temperature"
        out.append(s.indoor_temp_c)
    return out


def test_mode_and_band_follow_outdoor_temperature() -> None:
    from sim.physics import make_physics

    devs = _buildings()
    heats = [d for d in devs if d.behaviour.get("heating")]
    gas = [d for d in devs if not d.behaviour.get("heating")]
    assert heats and gas  # the scenario draws both
    for d in heats[:3] + gas[:3]:
        m = make_physics(d.kind, d.spec.rated_power_kw, d.spec.params)
        assert isinstance(m, BuildingModel)
        set_hvac_mode(m, d, 5.0)
        if d.behaviour.get("heating"):
            assert m.mode == "heat" and (m.comfort_min_c, m.comfort_max_c) == (18.0, 22.0)
        else:
            assert m.mode == "off"
        set_hvac_mode(m, d, 33.0)
        assert m.mode == "cool"
        assert (m.comfort_min_c, m.comfort_max_c) == (d.spec.params["comfort_min_c"],
                                                      d.spec.params["comfort_max_c"])


def test_uncontrolled_winter_day_heats_and_keeps_comfort() -> None:
    """A 5 degC day with nobody controlling: heat-pump buildings draw power while open and stay
    in the 18-22 degC band while open (they pre-heat); the others draw nothing."""
    devs = _buildings()
    plant = CityPlant(devs, datetime(2026, 1, 6, 0, 0, tzinfo=TZ), seed=3)

    async def day() -> tuple[np.ndarray, list[list[float]]]:
        kw, temps = [], []
        for _ in range(96):
            plant.shape(5.0)
            kw.append(await plant.advance(15))
            temps.append(_indoor_temps_c(plant))
        return np.array(kw), temps

    kw, temps = asyncio.run(day())
    for i, d in enumerate(devs):
        open_h, close_h = int(d.behaviour["open_hour"]), int(d.behaviour["close_hour"])
        rows = [k for k in range(96) if open_h <= k / 4 < close_h]
        if d.behaviour.get("heating"):
            assert kw[rows, i].mean() > 0.05 * d.spec.rated_power_kw, d.spec.name
            assert all(17.9 <= temps[k][i] <= 22.1 for k in rows), d.spec.name
        else:
            assert kw[:, i].max() == 0.0, d.spec.name
