"""The operator console's performance-record panel in headless chromium: a VPP suspended by
three failed responses shows its state, since when, the remedy deadline, why bids are
refused and the failed events, in English and in Chinese, as the API says; no console error and
no request off 127.0.0.1. Kept short (one page, no live loops): the browser suite is over its
time budget."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.vpp.api.conftest import Api
from tests.vpp.daemon.harness import PROGRAMME
from tests.vpp.dashboard.browser import chromium, sign_in
from vpp.db import session_scope
from vpp.models import GridEvent, Settlement

pytestmark = [pytest.mark.browser]
SH = ZoneInfo("Asia/Shanghai")


def _failed_events(api: Api) -> list[int]:
    """Three settled events 10, 9 and 8 days ago that delivered 20% (the floor is 50%)."""
    today = datetime.now(SH).replace(hour=18, minute=0, second=0, microsecond=0)
    ids = []
    with session_scope(api.engine) as s:
        for k in (10, 9, 8):
            start = today - timedelta(days=k)
            ev = GridEvent(external_id=f"failed-{k}", source="cli", event_type="day_ahead",
                           programme=PROGRAMME, start=start, end=start + timedelta(hours=1),
                           requested_kw=100.0, status="settled")
            s.add(ev)
            s.flush()
            ids.append(int(ev.id or 0))
            s.add(Settlement(event_id=ids[-1], baseline_kwh=100, metered_kwh=80,
                             response_kwh=20, declared_kw=100, performance_ratio=0.2,
                             revenue_fen=0))
    return ids


async def _record(api: Api) -> Any:
    async with api.http.get(api.url + "/api/v1/performance",
                            headers={"Authorization": f"Bearer {api.tokens.operator}"}) as r:
        assert r.status == 200
        return await r.json()


async def test_the_panel_shows_a_suspension_in_both_languages(api: Api) -> None:
    ids = _failed_events(api)
    rec = await _record(api)
    assert rec["state"] == "suspended"
    async with chromium() as (ctx, watch):
        page = await ctx.new_page()
        await sign_in(page, api.url, "/dashboard/", api.tokens.operator, "en")
        await page.wait_for_selector("#perf-state[data-state='suspended']")
        assert await page.locator("#perf-state").inner_text() == "suspended"
        assert await page.locator("#perf-since").inner_text() == f"since {rec['since']}"
        assert await page.locator("#perf-deadline").inner_text() == \
            f"Remedy by {rec['remedy_deadline']}"
        assert await page.locator("#perf-reason").inner_text() == f"Bids refused: {rec['reason']}"
        rows = await page.locator("#perf-failed tr").all_inner_texts()
        assert [r.split()[0] for r in rows] == [f"#{i}" for i in reversed(ids)]  # newest first
        assert "20 %" in rows[0] and "50 %" in rows[0] and "suspended" in rows[0]
        assert not await page.locator("#perf-no-failures").is_visible()
        await page.click("#lang")
        await page.wait_for_selector("#perf-state:has-text('暂停')")
        assert await page.locator("#perf-deadline").inner_text() == \
            f"整改期限 {rec['remedy_deadline']}"
        assert (await page.locator("#perf-detail").inner_text()).startswith(
            "近 12 个月未有效响应 3 次")
        await page.close()
    assert watch.foreign == []
    assert watch.errors == [], "\n".join(watch.errors)
