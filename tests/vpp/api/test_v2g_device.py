"""A V2G charger through the API (SQLite and PostgreSQL): enrolled with its register profile and
a negative lower limit (it may export), and its owner declares the car's departure and need."""

from __future__ import annotations

from tests.vpp.api.conftest import Api
from tests.vpp.api.test_auth_and_errors import _req


async def test_a_v2g_charger_enrols_and_takes_the_drivers_departure(api_both: Api) -> None:
    api = api_both
    spec = {"owner_id": api.tokens.owner_id, "site": "home", "host": "127.0.0.1", "port": 1511,
            "devices": [{"name": "quasar", "kind": "v2g_charger", "unit_id": 1,
                         "profile": "wallbox-quasar", "rated_power_kw": 7.4,
                         "min_setpoint_kw": -7.4, "max_setpoint_kw": 7.4,
                         "params": {"car_battery_kwh": 40.0, "wear_yuan_per_kwh": 0.2}}]}
    status, body, _ = await _req(api, "POST", "/api/v1/gateways", api.tokens.operator, json=spec)
    assert status == 202, body
    await api.parts.enrolment.wait()
    dev = body["device_ids"][0]
    status, device, _ = await _req(api, "GET", f"/api/v1/devices/{dev}", api.tokens.owner)
    assert status == 200 and device["kind"] == "v2g_charger"
    assert device["min_setpoint_kw"] == -7.4
    path = f"/api/v1/devices/{dev}/preferences"
    prefs = {"ev_departure": "07:30", "ev_energy_needed_kwh": 12.0}
    status, body, _ = await _req(api, "PATCH", path, api.tokens.owner, json=prefs)
    assert status == 200 and body["preferences"] == prefs
    status, err, _ = await _req(api, "PATCH", path, api.tokens.owner, json={"reserve_soc_pct": 30})
    assert status == 400 and "does not apply to a v2g_charger" in err["error"]["message"]
    device = {"name": "quasar", "kind": "v2g_charger", "unit_id": 1, "profile": "wallbox-quasar",
              "rated_power_kw": 7.4, "min_setpoint_kw": -7.4, "max_setpoint_kw": 7.4,
              "params": {"soc_min_pct": 90, "soc_max_pct": 80}}
    bad = {**spec, "port": 1512, "devices": [device]}
    status, err, _ = await _req(api, "POST", "/api/v1/gateways", api.tokens.operator, json=bad)
    assert status == 400 and "state-of-charge limits inverted" in err["error"]["message"], err
