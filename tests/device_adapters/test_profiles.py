"""Profiles load and validate; read planning; SunSpec maps from pysunspec2; codec conversions."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from device_adapters.codec import decode_points, encode_point, kw_to_point, point_to_kw
from device_adapters.errors import ExceptionReply
from device_adapters.profile import (
    DEFAULT_PROFILES_DIR,
    list_profiles,
    load_profile,
    parse_profile,
    plan_blocks,
)
from device_adapters.registers import DataType, encode_raw
from device_adapters.sunspec import build_battery_profile, model_length, scan
from vpp.config import load_settings
from vpp.device_kinds import DeviceKind
from vpp.errors import ConfigError, DeviceError

SHIPPED = ["alfen-ng9xx", "coolmaster-vrf", "huawei-luna2000", "industrial-plc", "keba-p30",
           "sungrow-sh"]


def test_shipped_profiles_load() -> None:
    assert set(SHIPPED) <= set(list_profiles())
    for name in SHIPPED:
        p = load_profile(name)
        assert p.name == name
        blocks = plan_blocks(p, p.poll_points())
        assert 1 <= len(blocks) <= 2  # a poll is at most two requests
        assert all(b.count <= p.max_registers_per_read for b in blocks)


def test_demo_fleet_profiles_exist(repo_root: Path) -> None:
    settings = load_settings(repo_root / "config" / "zhuzhou-demo.toml", with_defaults_file=False)
    for o in settings.owners:
        for s in o.sites:
            for g in s.gateways:
                for d in g.devices:
                    assert load_profile(d.profile).kind == d.kind


def _raw(name: str) -> dict:
    with (DEFAULT_PROFILES_DIR / f"{name}.toml").open("rb") as fh:
        return tomllib.load(fh)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(colour="red"), "key colour: unknown key"),
        (lambda d: d["control"]["positive"].append({"point": "battery_soc", "value": 1}),
         "not writable"),
        (lambda d: d["measure"].update(power_kw={"point": "nope"}), "unknown point 'nope'"),
        (lambda d: d["points"]["forced_cmd"].update(min=5, max=1), "min 5.0 > max 1.0"),
        (lambda d: d["points"]["forced_cmd"].update(access="w"), "needs a readback"),
        (lambda d: d["points"]["battery_power"].update(unit="furlong"), "unknown unit"),
        (lambda d: d["control"]["release"][0].update(value="half"), "value must be"),
    ],
)
def test_bad_profiles_are_refused_with_reason(mutate, message: str) -> None:
    data = copy.deepcopy(_raw("huawei-luna2000"))
    mutate(data)
    with pytest.raises(ConfigError, match=message):
        parse_profile(data, "huawei-luna2000.toml")


def test_unknown_profile_lists_known() -> None:
    with pytest.raises(ConfigError, match="unknown device profile 'nope'.*keba-p30"):
        load_profile("nope")
    with pytest.raises(ConfigError, match="invalid profile name"):
        load_profile("../etc/passwd")


def test_sign_conventions_and_word_order() -> None:
    """Huawei reports + charge big-endian; Sungrow + discharge, low word first. Both normalise
    to our convention (> 0 consumption)."""
    hw, sg = load_profile("huawei-luna2000"), load_profile("sungrow-sh")
    hw_regs = {("holding", 37765 + i): w for i, w in enumerate(encode_raw(-1500, DataType.INT32))}
    v = decode_points(hw, ["battery_power"], hw_regs)["battery_power"]
    assert v * hw.measure.power_kw.sign == -1500  # discharging 1.5 kW
    sg_regs = {("input", 5213 + i): w
               for i, w in enumerate(encode_raw(1500, DataType.INT32, word_order="little"))}
    v = decode_points(sg, ["battery_power"], sg_regs)["battery_power"]
    assert v * sg.measure.power_kw.sign == -1500  # + discharge on the wire = export for us


def test_current_conversion() -> None:
    alfen, keba = load_profile("alfen-ng9xx"), load_profile("keba-p30")
    assert kw_to_point(alfen, "max_current", 22.08, {}) == pytest.approx(32.0)
    assert kw_to_point(keba, "set_charging_current", 6.9, {}) == pytest.approx(10000.0)
    assert point_to_kw(keba, "set_charging_current", 16000, {}) == pytest.approx(11.04)
    assert encode_point(keba, "set_charging_current", 16000) == [16000]


def _chain() -> tuple[list[tuple[int, int]], int]:
    chain, addr = [], 40002
    for mid in (1, 802, 124):
        chain.append((mid, addr))
        addr += 2 + model_length(mid)
    return chain, addr


def test_sunspec_profile_from_pysunspec2_models() -> None:
    chain, end = _chain()
    assert model_length(1) == 66 and model_length(124) == 24
    p = build_battery_profile(chain, end_address=end)
    assert p.kind is DeviceKind.BATTERY
    # offsets from the model definitions: 124 InWRte at +13 of its block (ID at +0)
    assert p.points["124.InWRte"].address == chain[2][1] + 13
    assert p.points["124.InOutWRte_RvrtTms"].address == chain[2][1] + 15
    assert p.points["802.W"].scale_sf == "802.W_SF"
    assert len(plan_blocks(p, p.poll_points())) <= 2
    regs = {("holding", p.points["124.InWRte"].address): 2500,
            ("holding", p.points["124.InOutWRte_SF"].address): 0xFFFE,  # -2
            ("holding", p.points["124.WChaMax"].address): 10000,
            ("holding", p.points["124.WChaMax_SF"].address): 0}
    v = decode_points(p, ["124.InWRte", "124.WChaMax"], regs)
    assert v["124.InWRte"] == pytest.approx(25.0)
    assert point_to_kw(p, "124.InWRte", 25.0, v) == pytest.approx(2.5)
    with pytest.raises(DeviceError, match="lacks model 124"):
        build_battery_profile(chain[:2])


async def test_sunspec_scan_walks_the_chain() -> None:
    chain, end = _chain()
    mem = {40000: 0x5375, 40001: 0x6E53, end: 0xFFFF, end + 1: 0}
    for mid, addr in chain:
        mem[addr], mem[addr + 1] = mid, model_length(mid)

    async def read(address: int, count: int) -> list[int]:
        if address not in mem:
            raise ExceptionReply("illegal address", 2)
        return [mem.get(address + i, 0) for i in range(count)]

    assert await scan(read) == (chain, end)

    async def no_sunspec(address: int, count: int) -> list[int]:
        return [0, 0]

    with pytest.raises(DeviceError, match="no SunSpec marker"):
        await scan(no_sunspec)
    mem[chain[1][1] + 1] = 0  # L = 0 breaks the chain
    with pytest.raises(DeviceError, match="malformed SunSpec chain"):
        await scan(read)
