"""The pv_inverter kind: typed parameters and its limits (minus an output ceiling, never a
consumption)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vpp.device_kinds import (
    GENERATORS,
    MAY_EXPORT,
    DeviceKind,
    PvInverterParams,
    check_limits,
    parse_kind,
    parse_params,
)


def test_params_parse_with_the_site_defaults() -> None:
    p = parse_params(DeviceKind.PV_INVERTER, {"dc_capacity_kwp": 120.0})
    assert isinstance(p, PvInverterParams)
    assert p.dc_capacity_kwp == 120.0 and p.azimuth_deg == 180.0 and p.tilt_deg == 20.0
    assert 27 < p.latitude_deg < 29 and 112 < p.longitude_deg < 114  # Zhuzhou
    assert parse_kind("pv_inverter") is DeviceKind.PV_INVERTER


@pytest.mark.parametrize(("params", "field"), [
    ({}, "dc_capacity_kwp"),
    ({"dc_capacity_kwp": 0.0}, "dc_capacity_kwp"),
    ({"dc_capacity_kwp": 10.0, "tilt_deg": 95.0}, "tilt_deg"),
    ({"dc_capacity_kwp": 10.0, "azimuth_deg": 360.0}, "azimuth_deg"),
    ({"dc_capacity_kwp": 10.0, "latitude_deg": 91.0}, "latitude_deg"),
    ({"dc_capacity_kwp": 10.0, "losses_pct": 100.0}, "losses_pct"),
    ({"dc_capacity_kwp": 10.0, "rated_kw": 5.0}, "rated_kw"),  # unknown key
])
def test_bad_params_are_refused_naming_the_field(params: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        parse_params(DeviceKind.PV_INVERTER, params)


def test_limits_are_minus_an_output_ceiling() -> None:
    assert DeviceKind.PV_INVERTER in MAY_EXPORT and DeviceKind.PV_INVERTER in GENERATORS
    check_limits(DeviceKind.PV_INVERTER, 100.0, -100.0, 0.0)  # unlimited .. no output
    check_limits(DeviceKind.PV_INVERTER, 100.0, -80.0, -10.0)  # an owner's narrower band
    with pytest.raises(ValueError, match="cannot consume"):
        check_limits(DeviceKind.PV_INVERTER, 100.0, -100.0, 5.0)
    with pytest.raises(ValueError, match="exceed rated_power_kw"):
        check_limits(DeviceKind.PV_INVERTER, 100.0, -120.0, 0.0)
    with pytest.raises(ValueError, match="inverted"):
        check_limits(DeviceKind.PV_INVERTER, 100.0, -10.0, -20.0)
