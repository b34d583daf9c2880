"""Retake the screenshots in ``docs/screenshots`` (the README shows one of them).

The browser tests save the main pages when ``VPP_SCREENSHOTS`` names a directory
(``tests/vpp/dashboard/browser.py``: headless chromium over the real server and database); this
runs those tests with it set, then stores any PNG over :data:`MAX_BYTES` as a 256-colour palette
PNG (Pillow: the pages' flat colours survive, anti-aliased edges lose a little; the city
console's long table otherwise weighs about 0.5 MB). Run from the repository root::

    .venv/bin/python benchmarks/screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"
#: the largest screenshot kept in the repository as taken (bytes)
MAX_BYTES = 300_000
#: the browser tests that save pages (``shot``)
TESTS = ("tests/vpp/dashboard/test_dashboard_browser.py",
         "tests/vpp/dashboard/test_console_city.py",
         "tests/vpp/dashboard/test_owner_devices_panel.py")


def shrink(path: Path) -> int:
    """Store ``path`` as a palette PNG when it is over :data:`MAX_BYTES`; its size after."""
    if path.stat().st_size > MAX_BYTES:
        with Image.open(path) as im:
            small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        small.save(path, optimize=True)
    return path.stat().st_size


def main() -> int:
    env = {**os.environ, "VPP_SCREENSHOTS": str(OUT)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0",
                          "-q", *TESTS], cwd=REPO, env=env, check=False)
    if run.returncode:
        print("browser tests failed: screenshots not all retaken", file=sys.stderr)
        return run.returncode
    for png in sorted(OUT.glob("*.png")):
        print(f"{png.relative_to(REPO)}: {shrink(png) / 1000:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
