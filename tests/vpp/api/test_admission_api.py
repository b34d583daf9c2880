"""``GET /api/v1/admission`` through the real aiohttp server on SQLite and PostgreSQL.

The server's programme (``test-rt``) is given Hunan's 2026 rules back (the harness opens its
windows and drops its minimums), and the demo fleet of bidding.synthetic is enrolled, active,
metered for two weeks, its battery polled at ``soc_pct``. Over 18:00-21:00 on 2026-07-15 the
fleet sheds 2,000 + 1,000 + 5,000 kW and, at 50%, its battery discharges and charges 4,000 kW:
16,000 kW (tests/vpp/test_cli_admission.py computes the same by the CLI).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from bidding.synthetic import DEMO_OWNERS, PROFILE_OF_KIND, TZ, simulate_history
from tests.conftest import REPO_ROOT
from tests.vpp.api.conftest import Api
from tests.vpp.daemon.harness import PROGRAMME, auth
from vpp import fleet
from vpp.db import session_scope
from vpp.models import Device, DeviceStatus, TelemetryReading

DAY = date(2026, 7, 15)
QUERY = "/api/v1/admission?day=2026-07-15&window=18:00-21:00"


def _hunan_rules(tmp_path: Path) -> None:
    text = (REPO_ROOT / "config/programmes/hunan-2026.toml").read_text()
    (tmp_path / "programmes" / f"{PROGRAMME}.toml").write_text(
        text.replace('name = "hunan-2026"', f'name = "{PROGRAMME}"'))


def _enrol(api: Api, soc_pct: float | None) -> None:
    with session_scope(api.engine) as s:
        for k, (name, devices) in enumerate(DEMO_OWNERS):
            owner = fleet.add_owner(s, f"admission {name}")
            spec = {"host": "127.0.0.1", "port": 17000 + k, "devices": [
                {**d, "unit_id": i + 1, "profile": PROFILE_OF_KIND[d["kind"]]}
                for i, d in enumerate(devices)]}
            fleet.add_gateway(s, owner, f"adm-site-{k}", spec)
        for d in s.exec(select(Device)):
            d.status = DeviceStatus.ACTIVE.value
            s.add(d)
    with session_scope(api.engine) as s:
        rows = list(s.exec(select(Device)))
        if soc_pct is not None:
            bat = next(d for d in rows if d.kind == "battery")
            s.add(TelemetryReading(device_id=int(bat.id or 0), power_kw=0.0, soc_pct=soc_pct,
                                   ts=datetime(2026, 7, 15, 9, 0, tzinfo=TZ)))
    simulate_history(api.engine, rows, DAY, days=14)


async def _get(api: Api, path: str, token: str) -> tuple[int, dict]:
    async with api.http.get(api.url + path, headers=auth(token)) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(("soc_pct", "admitted", "adjustable_kw"),
                         [(50.0, True, 16000.0), (None, False, 8000.0)])
async def test_admission_on_both_backends(api_both: Api, tmp_path: Path, soc_pct: float | None,
                                          admitted: bool, adjustable_kw: float) -> None:
    api = api_both
    _hunan_rules(tmp_path)
    _enrol(api, soc_pct)
    status, body = await _get(api, QUERY, api.tokens.operator)
    assert status == 200, body
    assert body["programme"] == PROGRAMME and body["programme_version"] == "2026-01-22"
    assert body["adjustable_kw"] == adjustable_kw and body["admitted"] is admitted
    assert body["window_start"] == "2026-07-15T18:00:00+08:00"
    assert body["window_end"] == "2026-07-15T21:00:00+08:00"
    cap = body["rules"][0]
    assert cap["name"] == "adjustable_capacity" and cap["required"] == 10000.0
    assert cap["margin"] == adjustable_kw - 10000.0
    assert cap["status"] == ("pass" if admitted else "fail") and cap["verified"] is True
    assert body["normal_load_kw"] > 0 and len(body["owners"]) == 3


async def test_only_operators_and_bad_input_is_400(api: Api, tmp_path: Path) -> None:
    _hunan_rules(tmp_path)
    status, body = await _get(api, QUERY, api.tokens.owner)
    assert status == 403 and body["error"]["code"] == "forbidden"
    for query, message in [("window=21:00-18:00", "the end must come after the start"),
                           ("window=18:05-19:00", "not on 15-minute intervals"),
                           ("day=2024-01-01", "no version in force"),
                           ("history_days=0", "history_days")]:
        status, body = await _get(api, f"/api/v1/admission?{query}", api.tokens.operator)
        assert status == 400, (query, body)
        assert body["error"]["code"] == "invalid_input" and message in body["error"]["message"]


async def test_an_empty_fleet_is_not_admitted(api: Api, tmp_path: Path) -> None:
    _hunan_rules(tmp_path)
    status, body = await _get(api, "/api/v1/admission?day=2026-07-15", api.tokens.operator)
    assert status == 200, body
    assert body["devices_counted"] == 0 and body["adjustable_kw"] == 0.0
    assert not body["admitted"]
    assert body["window_start"] == "2026-07-15T10:00:00+08:00"  # the peak-shaving window
