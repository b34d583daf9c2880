"""Which SunSpec map a scanned chain gives (device_adapters.sunspec.build_profile): a PV
inverter's from models 1 + 101/102/103 + 121 + 123, a battery's from 1 + 802 + 124, and, for a
hybrid inverter offering both, the enrolled kind decides."""

from __future__ import annotations

import pytest

from device_adapters.sunspec import build_profile, model_length
from vpp.device_kinds import DeviceKind
from vpp.errors import DeviceError


def chain(*models: int) -> list[tuple[int, int]]:
    out, addr = [], 40002
    for m in models:
        out.append((m, addr))
        addr += 2 + model_length(m)
    return out


@pytest.mark.parametrize("inverter", [101, 102, 103])
def test_any_inverter_model_gives_the_pv_map_reading_its_watts(inverter: int) -> None:
    prof = build_profile(chain(1, inverter, 120, 121, 123))
    assert prof.kind is DeviceKind.PV_INVERTER
    assert prof.measure.power_kw.point == f"{inverter}.W" and prof.measure.power_kw.sign == -1
    assert prof.points["123.WMaxLimPct"].max == 100 and prof.points["123.WMaxLimPct"].min == 0
    assert [a.point for a in prof.control.release] == ["123.WMaxLimPct", "123.WMaxLim_Ena"]
    assert prof.control.positive == []  # a PV inverter is never told to consume


def test_a_hybrid_chain_follows_the_enrolled_kind() -> None:
    hybrid = chain(1, 103, 121, 123, 802, 124)
    assert build_profile(hybrid).kind is DeviceKind.BATTERY  # storage models present
    assert build_profile(hybrid, kind=DeviceKind.PV_INVERTER).kind is DeviceKind.PV_INVERTER
    assert build_profile(hybrid, kind=DeviceKind.BATTERY).kind is DeviceKind.BATTERY


@pytest.mark.parametrize(("models", "missing"), [
    ((1, 121, 123), "101/102/103"),
    ((1, 103, 123), "121"),
    ((103, 121, 123), "1"),
])
def test_an_incomplete_chain_is_refused_naming_what_is_missing(models: tuple[int, ...],
                                                               missing: str) -> None:
    with pytest.raises(DeviceError, match=f"lacks model {missing}"):
        build_profile(chain(*models), kind=DeviceKind.PV_INVERTER)
