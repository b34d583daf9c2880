"""Both dashboard pages in a real headless browser (Debian's chromium driven by playwright),
against the real daemon and simulated Modbus devices. Every request the pages make must go to
the daemon itself (no CDN, no network)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlalchemy import Engine

from tests.vpp.daemon.harness import (
    call_now,
    daemon_settings,
    gateway_spec,
    port,
    seed,
    start_gateway,
)
from vpp.server import Daemon

#: Under CI (``CI=true``, as ``.ci/run`` is run) a missing chromium is a failure, not a skip:
#: ``make test`` installs it, so its absence there means the install step broke.
CHROMIUM_REQUIRED = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "Debian chromium is not installed (make install-browser)"
        if CHROMIUM_REQUIRED:
            pytest.fail(f"{message}; CI=true requires the browser tests to run")
        pytest.skip(message)
    return path


pytestmark = [pytest.mark.browser]

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


async def _points_above(page: Any, n: int, timeout_s: float = 30.0) -> int:
    """Wait until the chart has drawn more than ``n`` points (it redraws without a reload).
    Polled from Python: the page's CSP (rightly) forbids the eval behind wait_for_function."""
    for _ in range(int(timeout_s / 0.2)):
        got = int(await page.locator("#chart").get_attribute("data-points") or 0)
        if got > n:
            return got
        await asyncio.sleep(0.2)
    raise AssertionError(f"chart stuck at {n} points")


async def test_owner_enrols_and_operator_watches(sqlite_engine: Engine, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    chromium = chromium_path()
    engine = sqlite_engine
    tokens = seed(engine)
    gspec = gateway_spec(port())
    gw = await start_gateway(gspec)
    daemon = Daemon(daemon_settings(tmp_path, str(engine.url)), engine, port=0)
    base = await daemon.start()
    foreign: list[str] = []
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=ARGS)
            page = await browser.new_page()
            page.on("request", lambda r: foreign.append(r.url)
                    if urlparse(r.url).hostname not in ("127.0.0.1", None) else None)
            page.set_default_timeout(30_000)

            # -- the owner page: sign in, enrol the simulated gateway, follow the probe
            await page.goto(f"{base}/dashboard/owner.html")
            assert await page.locator("h1").inner_text() == "湘能虚拟电厂 · 业主"
            await page.fill("#token", tokens.owner)
            await page.click("#signin")
            await page.wait_for_selector("#who:has-text('Shennong City Mall')")
            await page.fill("form#enrol input[name=site]", "mall")
            await page.fill("form#enrol input[name=port]", str(gspec["port"]))
            await page.fill("form#enrol input[name=units]", "1-2")
            await page.click("form#enrol button[type=submit]")
            await page.wait_for_selector("#probe-state.state-done")
            assert "unit 1" in await page.locator("#probe-units").inner_text()
            await page.wait_for_selector("#devices tr:nth-child(2)")
            await page.wait_for_selector("#gateways td.status-active")

            # -- the operator page: chart, events and devices update without a reload
            op = await browser.new_page()
            op.on("request", lambda r: foreign.append(r.url)
                  if urlparse(r.url).hostname not in ("127.0.0.1", None) else None)
            op.set_default_timeout(30_000)
            await op.goto(f"{base}/dashboard/")
            await op.click("#lang")  # to English
            assert await op.locator("h1").inner_text() == "Xiang VPP · Operator"
            await op.fill("#token", tokens.operator)
            await op.click("#signin")
            await op.wait_for_selector("#devices tr:nth-child(2)")
            await _points_above(op, 0)
            import aiohttp

            async with aiohttp.ClientSession() as c, c.post(
                    f"{base}/api/v1/grid/calls", json=call_now("rt-browser", 6.0),
                    headers={"Authorization": f"Bearer {tokens.grid}"}) as r:
                assert r.status == 201
                event_id = (await r.json())["event_id"]
            await op.wait_for_selector(f"#active:has-text('#{event_id} rt-browser')")
            before = int(await op.locator("#chart").get_attribute("data-points") or 0)
            await _points_above(op, before)
            await op.wait_for_selector("#events td.status-active")
            assert "rt-browser" in await op.locator("#events").inner_text()
            # the chart has drawn pixels (not a blank canvas)
            painted = await op.evaluate("""() => {
                const c = document.getElementById('chart');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""")
            assert painted > 500
            await op.click("#lang")  # back to Chinese, text switches in place
            assert await op.locator("h1").inner_text() == "湘能虚拟电厂 · 运营"
            await op.screenshot(path=str(tmp_path / "operator.png"))
            await browser.close()
    finally:
        await daemon.stop()
        await gw.stop()
    assert foreign == []
