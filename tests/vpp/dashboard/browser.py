"""What every browser test of the dashboard shares: Debian's chromium (playwright's own browser
download does not work here), pages that record every request leaving 127.0.0.1 and every
console error or uncaught exception, and an API server over a seeded database with no loops."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

#: Under CI (``CI=true``, as ``.ci/run`` is run) a missing chromium is a failure, not a skip:
#: ``make test`` installs it, so its absence there means the install step broke.
CHROMIUM_REQUIRED = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: ``VPP_SCREENSHOTS=<dir>``: the tests also save the main pages there (docs/screenshots)
SHOTS = os.environ.get("VPP_SCREENSHOTS")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "Debian chromium is not installed (make install-browser)"
        if CHROMIUM_REQUIRED:
            pytest.fail(f"{message}; CI=true requires the browser tests to run")
        pytest.skip(message)
    return path


@dataclass
class Watch:
    """Requests that left loopback and what the pages reported as errors."""

    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> Any:
        page.on("request", lambda r: self.foreign.append(r.url)
                if urlparse(r.url).hostname not in ("127.0.0.1", None) else None)
        page.on("console", lambda m: self.errors.append(
            f"console: {m.text} ({m.location.get('url')})") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.set_default_timeout(30_000)
        return page


@asynccontextmanager
async def chromium(width: int = 1400, height: int = 900) -> AsyncIterator[tuple[Any, Watch]]:
    """A headless chromium context and the watch over its pages."""
    from playwright.async_api import async_playwright

    path = chromium_path()
    watch = Watch()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=ARGS)
        context = await browser.new_context(viewport={"width": width, "height": height})
        context.on("page", watch.attach)
        try:
            yield context, watch
        finally:
            await browser.close()


async def sign_in(page: Any, base: str, path: str, token: str, lang: str) -> None:
    """Open ``path``, pick ``lang`` ("en" or "zh": the page remembers the last choice, Chinese
    at first) and sign in."""
    await page.goto(f"{base}{path}")
    if (await page.locator("html").get_attribute("lang") or "").startswith("zh") != (lang == "zh"):
        await page.click("#lang")
    await page.fill("#token", token)
    await page.click("#signin")
    await page.wait_for_selector("#signed-in:not(.hidden)")


async def chart_points(page: Any, above: int = 0, timeout_s: float = 30.0,
                       selector: str = "#chart") -> int:
    """Wait until the chart holds more than ``above`` points (it redraws without a reload).
    Polled from Python: the page's CSP (rightly) forbids the eval behind wait_for_function."""
    for _ in range(int(timeout_s / 0.2)):
        got = int(await page.locator(selector).get_attribute("data-points") or 0)
        if got > above:
            return got
        await asyncio.sleep(0.2)
    raise AssertionError(f"chart stuck at {above} points")


async def painted(page: Any, selector: str = "#chart") -> int:
    """Pixels the ECharts canvas has drawn (not a blank chart)."""
    n: int = await page.evaluate("""(sel) => {
        const c = document.querySelector(sel + ' canvas');
        if (!c) return 0;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""", selector)
    return n


async def shot(page: Any, name: str) -> None:
    """Save the whole page as ``name`` under ``VPP_SCREENSHOTS``, when it is set."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / name), full_page=True)
