"""The owner page's device views in headless chromium: a settled event expands into its
devices' table (as the API answers it), and a preference change shows its effect before
saving, in English and in Chinese; no console error, no request off 127.0.0.1. Kept short (one
page, no live loops): the browser suite is near its time budget."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.vpp.api.conftest import Api
from tests.vpp.api.test_owner_devices import _plant, _settled
from tests.vpp.dashboard.browser import chromium, shot, sign_in
from vpp.db import session_scope
from vpp.models import Device
from vpp.telemetry_store import Reading, write_readings

pytestmark = [pytest.mark.browser]


async def test_devices_of_an_event_and_a_preference_preview(api: Api) -> None:
    event_id, _ = _settled(api)
    # a building whose declared thermal mass holds its band through the whole 120-minute shed
    # (undeclared R and C are sized from the rated power, which would hold it 59 minutes and
    # leave the 60-minute preference below without effect)
    mall = _plant(api, api.tokens.owner_id, "mall", "commercial_building",
                  {"max_shed_kw": 8.0, "max_shed_minutes": 120,
                   "thermal_resistance_c_per_kw": 0.05, "thermal_capacitance_kwh_per_c": 40.0})
    write_readings(api.engine, [Reading(i, datetime.now(UTC) - timedelta(minutes=1), 15.0)
                                for i in mall])
    async with chromium() as (ctx, watch):
        page = await ctx.new_page()
        await sign_in(page, api.url, "/dashboard/owner.html", api.tokens.owner, "en")
        await page.click(f"#events button.expand[data-event='{event_id}']")
        rows = page.locator(f"#events tr.detail[data-event='{event_id}'] tbody tr")
        await rows.first.wait_for()
        texts = await rows.all_inner_texts()
        assert "plant-1" in texts[0] and "3.50 kWh" in texts[0]  # (6+5+2+1) kW x 0.25 h
        assert "plant-2" in texts[1] and "3.25 kWh" in texts[1]
        assert "Settled response" in texts[-1] and "6.75 kWh" in texts[-1]

        await page.click(f"#devices button.prefs[data-device='{mall[0]}']")
        await page.fill("#prefs-form input[name=max_shed_minutes]", "60")
        line = page.locator("#prefs-preview li").first
        await page.wait_for_selector("#prefs-preview li:has-text('instead of')")
        assert await line.inner_text() == "mall-1 would shed at most 4.0 kW instead of 8.0 kW."
        await page.click("#lang")
        await page.wait_for_selector("#prefs-preview li:has-text('最多可削减')")
        assert await line.inner_text() == "mall-1 最多可削减 4.0 kW（现为 8.0 kW）。"
        assert "响应电量" in await page.locator(
            f"#events tr.detail[data-event='{event_id}'] thead").inner_text()

        # a day off: out of every event that starts in the next 24 h, nothing to shed in the
        # preview's window; saved as an aware time
        await page.click("#opt-out-day")
        await page.wait_for_selector("#prefs-preview li:has-text('之后自动恢复参与')")
        typed = await page.input_value("#prefs-form input[name=opt_out_until]")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", typed), typed  # as the page writes dates
        await page.click("#lang")
        await page.wait_for_selector("#prefs-preview li:has-text('take part again after')")
        assert await line.inner_text() == "mall-1 would shed at most 0.0 kW instead of 8.0 kW."
        await shot(page, "owner-preferences-en.png")
        await page.click("#prefs-form button[type=submit]")
        await page.wait_for_selector("#prefs-preview li:has-text('Saved.')")
        await page.close()
    with session_scope(api.engine) as s:
        prefs = s.get(Device, mall[0]).preferences  # type: ignore[union-attr]
    until = datetime.fromisoformat(prefs["opt_out_until"])
    assert prefs["max_shed_minutes"] == 60
    assert abs(until - datetime.now(UTC) - timedelta(days=1)) < timedelta(minutes=5)
    assert watch.foreign == []
    assert watch.errors == [], "\n".join(watch.errors)
