"""The operator console over a 10,000-device fleet in headless chromium: the summary reads in
MW and matches the API, the device table is one page from the server, paging and search move
through the fleet, both languages, no console errors and no request off 127.0.0.1."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from tests.vpp.api.conftest import Api
from tests.vpp.dashboard.browser import chart_points, chromium, painted, shot, sign_in
from tests.vpp.dashboard.city import KINDS, add_city_fleet, given_forecast
from vpp.models import Device, table_of

pytestmark = [pytest.mark.browser]


async def _json(api: Api, path: str) -> Any:
    async with api.http.get(api.url + path,
                            headers={"Authorization": f"Bearer {api.tokens.operator}"}) as r:
        assert r.status == 200
        return await r.json()


async def test_console_at_city_scale(api: Api, tmp_path: Path) -> None:
    add_city_fleet(api.engine, 10_000)
    given_forecast(api.parts)
    summary = await _json(api, "/api/v1/console/fleet-summary")
    forecast = await _json(api, "/api/v1/console/forecast")
    async with chromium() as (ctx, watch):
        page = await ctx.new_page()
        await page.goto(f"{api.url}/dashboard/")
        # signed out: the token box and the hint, no "signed in as", no error
        assert await page.locator("#signed-out").is_visible()
        assert not await page.locator("#signed-in").is_visible()
        assert await page.locator("#error").inner_text() == ""
        await sign_in(page, api.url, "/dashboard/", api.tokens.operator, "en")
        # signed in: who, not the token box nor the hint
        assert await page.locator("#who").inner_text() == "Signed in as: Operator"
        assert not await page.locator("#token").is_visible()
        assert not await page.locator("#hint").is_visible()

        await page.wait_for_selector("#by-kind tr:nth-child(4)")
        rows = await page.locator("#by-kind tr").all_inner_texts()
        industrial = next(g for g in summary["by_kind"] if g["key"] == "industrial_load")
        mw = industrial["rated_kw"] / 1000  # 2,500 x 1,200 kW = 3,000 MW
        assert any(r.startswith("Industrial load") and f"{mw:,.2f} MW" in r for r in rows), rows
        assert await page.locator("#online").inner_text() == "0 / 10,000"
        assert await page.locator("#rated").inner_text() == f"{summary['rated_kw'] / 1000:,.2f} MW"
        ev_row = next(r for r in rows if r.startswith("EV charger"))
        assert "150.00 MW" in ev_row  # 2,500 x 60 kW

        # the forecast: P10-P90 band, median and actuals, as many points as the API answers
        assert await chart_points(page, selector="#forecast-chart") == len(forecast["points"])
        assert await painted(page, "#forecast-chart") > 500
        assert "P10 / P50 / P90" in await page.locator("#forecast-state").inner_text()
        # alerts pushed while the page is open: a gateway's devices all go offline
        await page.wait_for_selector("#alerts-state:has-text('live')")
        assert await page.locator("#alerts li").count() == 0
        d = table_of(Device)
        with api.engine.begin() as c:
            c.execute(update(d).where(d.c.gateway_id == 7).values(status="offline"))
        await page.wait_for_selector("#alerts li[data-subject='gateway:7']")
        assert "Gateway offline · gateway 7: all 5 devices offline" in await page.locator(
            "#alerts").inner_text()
        await shot(page, "console-city-en.png")
        # one page of 50 from the server, then the next
        await page.wait_for_selector("#page-info:has-text('1–50 of 10,000')")
        assert await page.locator("#devices tr").count() == 50
        first_ids = await page.locator("#devices tr td:first-child").all_inner_texts()
        await page.click("#next")
        await page.wait_for_selector("#page-info:has-text('51–100 of 10,000')")
        second_ids = await page.locator("#devices tr td:first-child").all_inner_texts()
        assert not set(first_ids) & set(second_ids)
        # a device's rated power below 1 MW reads in kW
        assert "60.0 kW" in await page.locator("#devices").inner_text()

        # search and filter: the server narrows, paging restarts
        await page.select_option("#filters select[name=kind]", "battery")
        await page.fill("#filters input[name=q]", "City owner 00003")
        n = sum(1 for i in range(50, 75) if KINDS[i % len(KINDS)][0] == "battery")
        await page.wait_for_selector(f"#page-info:has-text('1–{n} of {n}')")
        names = await page.locator("#devices tr td:nth-child(4)").all_inner_texts()
        assert set(names) == {"City owner 00003"}

        await page.click("#lang")  # to Chinese, in place
        await page.wait_for_selector("#by-kind tr:has-text('工业负荷')")
        assert "网关离线" in await page.locator("#alerts").inner_text()
        assert "离线" in await page.locator("#by-status").inner_text()  # statuses in Chinese
        assert await page.locator("h1").inner_text() == "湘能虚拟电厂 · 运营"
        assert re.search(r"当前用户: 运营", await page.locator("#who").inner_text())
    assert watch.foreign == []
    assert watch.errors == [], "\n".join(watch.errors)
