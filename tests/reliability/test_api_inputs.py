"""Inputs schemathesis found to break the API (each was a 500 before its fix), on SQLite and
PostgreSQL: ids beyond the database's integer range are a clean 400, never an internal error."""

from __future__ import annotations

import pytest

from tests.reliability.world import device_spec, new_port, request
from tests.vpp.api.conftest import Api

HUGE = "1186487837354114861236224"


@pytest.mark.parametrize("path", [
    f"/api/v1/owners/{HUGE}", f"/api/v1/devices/{HUGE}", f"/api/v1/gateways/{HUGE}",
    f"/api/v1/events/{HUGE}", f"/api/v1/devices/{2**31}/telemetry",
])
async def test_ids_beyond_the_integer_range_are_a_400(api_both: Api, path: str) -> None:
    status, body = await request(api_both, "GET", path, api_both.tokens.operator)
    assert status == 400, body
    assert body["error"]["code"] == "invalid_input" and "at most 2147483647" in \
        body["error"]["message"]


async def test_enrolling_for_an_impossible_owner_id_is_a_400(api_both: Api) -> None:
    spec = device_spec(2**63, new_port())
    status, body = await request(api_both, "POST", "/api/v1/gateways", api_both.tokens.operator,
                                 spec)
    assert status == 400 and "body.owner_id" in body["error"]["message"], body
