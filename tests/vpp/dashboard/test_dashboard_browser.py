"""The owner page, the operator console and the event page in a real headless browser (Debian's
chromium driven by playwright), against the real daemon and simulated Modbus devices, through a
simulated event: the owner enrols a gateway, the grid calls, the daemon plans and dispatches; a
finished event on the same devices is settled by the daemon's settle loop. What a person would
look for is checked against the API: the event page's figures, dates (2026-12-08 14:00 CST, in
both languages) and units; no console error, no request off 127.0.0.1.

``VPP_SCREENSHOTS=<dir>`` also saves the main pages there (``docs/screenshots`` holds them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import Engine

from tests.vpp.daemon.harness import (
    add_completed_event,
    call_now,
    daemon_settings,
    gateway_spec,
    get_json,
    port,
    seed,
    start_gateway,
    wait_for,
)
from tests.vpp.dashboard.browser import chart_points, chromium, painted, shot, sign_in
from vpp.db import session_scope
from vpp.server import Daemon
from vpp.telemetry_store import Reading, write_readings

pytestmark = [pytest.mark.browser]
ZONE = ZoneInfo("Asia/Shanghai")


def window(start: str, end: str, zone_label: str) -> str:
    """The page's rule, restated: ISO-like local date and time, the end's date only if it
    differs, then the zone."""
    a = datetime.fromisoformat(start).astimezone(ZONE)
    b = datetime.fromisoformat(end).astimezone(ZONE)
    tail = f"{b:%H:%M}" if a.date() == b.date() else f"{b:%Y-%m-%d %H:%M}"
    return f"{a:%Y-%m-%d %H:%M}–{tail} {zone_label}"


def kw(v: float) -> str:
    return f"{v / 1000:,.2f} MW" if abs(v) >= 1000 else f"{v:,.1f} kW"


def settled_event(engine: Engine, owner_id: int, device_ids: list[int]) -> int:
    """A finished one-hour event three hours ago on the enrolled devices, with their meter
    readings (1 kW against a 5 kW baseline): the daemon's settle loop settles it."""
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    with session_scope(engine) as s:
        event_id = add_completed_event(s, "da-settled", start, device_ids, owner_id,
                                       declared_kw=6.0, baseline_kw=5.0)
    write_readings(engine, [Reading(i, start + timedelta(seconds=30 * k), 1.0)
                            for i in device_ids for k in range(120)])
    return event_id


async def test_console_through_an_event(sqlite_engine: Engine, tmp_path: Path) -> None:
    engine = sqlite_engine
    tokens = seed(engine)
    gspec = gateway_spec(port())
    gw = await start_gateway(gspec)
    daemon = Daemon(daemon_settings(tmp_path, str(engine.url)), engine, port=0)
    base = await daemon.start()
    try:
        async with chromium() as (ctx, watch), aiohttp.ClientSession() as http:
            catalogue = await get_json(http, f"{base}/api/v1/profile-catalogue", tokens.owner)
            await _owner_enrols(ctx, base, tokens.owner, gspec["port"], catalogue)
            devices = await get_json(http, f"{base}/api/v1/devices", tokens.operator)
            settled = settled_event(engine, tokens.owner_id, [d["id"] for d in devices])
            live = await _operator_watches_a_call(ctx, http, base, tokens)
            await _event_page_live(ctx, http, base, tokens.operator, live)
            await _event_page_settled(ctx, http, base, tokens.operator, settled)
            await _owner_earnings(ctx, http, base, tokens.owner, settled, tmp_path)
    finally:
        await daemon.stop()
        await gw.stop()
    assert watch.foreign == []
    assert watch.errors == [], "\n".join(watch.errors)


async def _owner_enrols(ctx: Any, base: str, token: str, gw_port: int,
                        catalogue: list[dict[str, Any]]) -> None:
    page = await ctx.new_page()
    await page.goto(f"{base}/dashboard/owner.html")
    assert await page.locator("h1").inner_text() == "湘能虚拟电厂 · 业主"
    await sign_in(page, base, "/dashboard/owner.html", token, "zh")
    await page.wait_for_selector("#who:has-text('Shennong City Mall')")
    await page.fill("form#enrol input[name=site]", "mall")
    await page.fill("form#enrol input[name=port]", str(gw_port))
    await page.fill("form#enrol input[name=units]", "1-2")
    # the picker offers the profiles of the chosen kind (batteries), packaged ones included
    await page.wait_for_selector("#profile-pick option[value='huawei-luna2000']", state="attached")
    kinds = {c["name"]: c["kind"] for c in catalogue}
    offered = await page.locator("#profile-pick option").evaluate_all(
        "(os) => os.map((o) => o.value)")
    assert offered and {kinds[n] for n in offered} == {"battery"}
    await page.select_option("#profile-pick", "huawei-luna2000")
    await page.click("form#enrol button[type=submit]")
    await page.wait_for_selector("#probe-state.state-done")
    # the probe's answer in plain words (the page is in Chinese)
    assert await page.locator("#probe-words").inner_text() == \
        "网关已应答：2 台设备中 2 台就绪，将参与响应。"
    assert "从站 1：已连接，读数正常，就绪。" in await page.locator("#probe-units").inner_text()
    await page.wait_for_selector("#devices tr:nth-child(2)")
    await page.wait_for_selector("#gateways td.status-active")
    await page.close()


async def _operator_watches_a_call(ctx: Any, http: aiohttp.ClientSession, base: str,
                                   tokens: Any) -> int:
    op = await ctx.new_page()
    await sign_in(op, base, "/dashboard/", tokens.operator, "en")
    assert await op.locator("h1").inner_text() == "Xiang VPP · Operator"
    assert await op.locator("#who").inner_text() == "Signed in as: Operator"
    assert not await op.locator("#token").is_visible()
    await op.wait_for_selector("#devices tr:nth-child(2)")
    # the summary: two 5 kW batteries, in kW (below 1 MW)
    await op.wait_for_selector("#by-kind tr:has-text('Battery')")
    assert "10.0 kW" in await op.locator("#by-kind").inner_text()
    await chart_points(op)

    async with http.post(f"{base}/api/v1/grid/calls", json=call_now("rt-browser", 6.0),
                         headers={"Authorization": f"Bearer {tokens.grid}"}) as r:
        assert r.status == 201
        event_id = int((await r.json())["event_id"])
    await op.wait_for_selector(f"#active:has-text('#{event_id} rt-browser')")
    before = int(await op.locator("#chart").get_attribute("data-points") or 0)
    await chart_points(op, before)
    assert await painted(op) > 500
    row = op.locator("#events tr:has-text('rt-browser')")
    await row.locator("td.status-active").wait_for()
    ev = await get_json(http, f"{base}/api/v1/events/{event_id}", tokens.operator)
    text = await row.inner_text()
    assert window(ev["start"], ev["end"], "CST") in text and kw(6.0) in text
    await shot(op, "console-en.png")
    await op.click("#lang")  # back to Chinese, text switches in place
    assert await op.locator("h1").inner_text() == "湘能虚拟电厂 · 运营"
    await op.wait_for_selector(f"#events tr:has-text('{window(ev['start'], ev['end'], '北京时间')}')")
    await shot(op, "console-zh.png")
    await op.click("#lang")
    await row.locator(f"a:has-text('#{event_id}')").click()  # the event's own page
    await op.wait_for_selector(f"#ev-title:has-text('#{event_id}')")
    await op.close()
    return event_id


async def _event_page_live(ctx: Any, http: aiohttp.ClientSession, base: str, token: str,
                           event_id: int) -> None:
    page = await ctx.new_page()
    await sign_in(page, base, f"/dashboard/event.html?id={event_id}", token, "en")
    ev = await get_json(http, f"{base}/api/v1/events/{event_id}", token)
    bids = await get_json(http, f"{base}/api/v1/events/{event_id}/bids", token)
    await page.wait_for_selector("#ev-external:has-text('rt-browser')")
    assert await page.locator("#ev-requested").inner_text() == kw(ev["requested_kw"])
    assert await page.locator("#ev-declared").inner_text() == kw(bids[-1]["declared_kw"])
    price = float(bids[-1]["price_yuan_per_kwh"])
    assert await page.locator("#ev-price").inner_text() == f"{price:,.2f} ¥/kWh"
    assert await page.locator("#ev-window").inner_text() == window(ev["start"], ev["end"], "CST")
    assert await page.locator("#ev-band").inner_text() == "50–120 %"  # the test programme's
    assert await page.locator("#bid-detail dt:has-text('rule')").count() == 1
    await page.wait_for_selector("#plans tr")  # the daemon's plan, with its reason
    plans = await get_json(http, f"{base}/api/v1/events/{event_id}/plans", token)
    first = await page.locator("#plans tr").first.inner_text()
    assert f"#{plans[0]['id']}" in first and (plans[0]["reason"] or "–") in first
    shares = await page.locator("#shares tr").all_inner_texts()
    assert len(shares) == len(bids[-1]["owners"]) and "Shennong City Mall" in shares[0]
    delivery = await get_json(http, f"{base}/api/v1/events/{event_id}/delivery", token)
    assert await chart_points(page) == len(delivery["intervals"])
    assert await painted(page) > 500
    # what the chart holds, read back from ECharts: the plan as a load (baseline - target, the
    # API's target being the reduction) and the paid band from baseline - 120 % to - 50 % of
    # the declared kW, per interval (the last point repeats the last interval to the end)
    series = await page.evaluate("""() => echarts.getInstanceByDom(
        document.getElementById('chart')).getOption().series.map((s) => s.data.map((p) => p[1]))""")
    low, width, _baseline, plan, _metered = series
    with_baseline = [k for k, iv in enumerate(delivery["intervals"]) if iv["baseline_kw"] is not None]
    assert with_baseline  # the baselines are fixed at the first plan
    for k in with_baseline:
        iv = delivery["intervals"][k]
        assert plan[k] == pytest.approx(iv["baseline_kw"] - iv["target_kw"])
        assert low[k] == pytest.approx(iv["baseline_kw"] - 1.2 * iv["declared_kw"])
        assert low[k] + width[k] == pytest.approx(iv["baseline_kw"] - 0.5 * iv["declared_kw"])
    await shot(page, "event-live-en.png")
    await page.close()


async def _event_page_settled(ctx: Any, http: aiohttp.ClientSession, base: str, token: str,
                              event_id: int) -> None:
    async def settled() -> Any:
        ev = await get_json(http, f"{base}/api/v1/events/{event_id}", token)
        return ev if ev["status"] == "settled" else None

    ev = await wait_for(settled, timeout_s=30, what="the settle loop")
    payouts = [p for p in await get_json(http, f"{base}/api/v1/payouts", token)
               if p["event_id"] == event_id]
    delivery = await get_json(http, f"{base}/api/v1/events/{event_id}/delivery", token)
    page = await ctx.new_page()
    await sign_in(page, base, f"/dashboard/event.html?id={event_id}", token, "en")
    await page.wait_for_selector("#settlements tr")
    assert await page.locator("#ev-revenue").inner_text() == f"¥{float(ev['revenue_yuan']):,.2f}"
    assert await page.locator("#ev-delivered").inner_text() == kw(delivery["delivered_kw"])
    assert await page.locator("#ev-window").inner_text() == window(ev["start"], ev["end"], "CST")
    assert (await page.locator("#settlements tr").first.inner_text()).startswith("v1")
    share = await page.locator("#shares tr").first.inner_text()
    assert f"¥{float(payouts[0]['amount_yuan']):,.2f}" in share
    ledger = await page.locator("#ledger").inner_text()
    assert "¥" in ledger and await page.locator("#ledger tr").count() >= 1
    await chart_points(page)
    await shot(page, "event-en.png")
    await page.click("#lang")
    await page.wait_for_selector("h2:has-text('结算')")
    assert await page.locator("#ev-window").inner_text() == window(ev["start"], ev["end"],
                                                                    "北京时间")
    await shot(page, "event-zh.png")
    await page.close()


async def _owner_earnings(ctx: Any, http: aiohttp.ClientSession, base: str, token: str,
                          event_id: int, tmp: Path) -> None:
    """The owner sees the settled event's payout by event and by month, and downloads the
    month's statement (the HTML `vpp report` writes)."""
    ev = await get_json(http, f"{base}/api/v1/events/{event_id}", token)
    payout = next(p for p in await get_json(http, f"{base}/api/v1/payouts", token)
                  if p["event_id"] == event_id)
    month = f"{datetime.fromisoformat(ev['start']).astimezone(ZONE):%Y-%m}"
    page = await ctx.new_page()
    await sign_in(page, base, "/dashboard/owner.html", token, "en")
    row = page.locator(f"#payouts tr:has-text('#{event_id} da-settled')")
    await row.wait_for()
    text = await row.inner_text()
    assert window(ev["start"], ev["end"], "CST") in text
    assert f"¥{float(payout['amount_yuan']):,.2f}" in text
    assert f"{payout['contribution_kwh']:,.2f}" in text
    mrow = page.locator(f"#months tr:has-text('{month}')")
    assert f"¥{float(payout['amount_yuan']):,.2f}" in await mrow.inner_text()
    await shot(page, "owner-en.png")
    async with page.expect_download() as dl:
        await mrow.locator("button").click()
    saved = tmp / "statement.html"
    await (await dl.value).save_as(saved)
    html = saved.read_text()
    assert f"Demand-response statement, {month}" in html and "Shennong City Mall" in html
    assert "da-settled" in html
    await page.close()
