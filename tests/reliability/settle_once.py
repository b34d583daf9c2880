"""One step of the daemon's settle loop in its own process (``python -m
tests.reliability.settle_once DB_URL SEARCH_PATH TMP``): what a test SIGKILLs at a failpoint
(``VPP_FAILPOINTS``) to crash the daemon inside settlement without starting all of it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.vpp.daemon.harness import daemon_settings
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.logs import configure_logging
from vpp.daemon.settle import Settler
from vpp.db import make_engine


async def main(url: str, search_path: str, tmp: Path) -> None:
    engine = make_engine(url, search_path=search_path or None)
    infra = Infra.create(daemon_settings(tmp, url), Db(engine))
    try:
        await Settler(infra).step()
    finally:
        infra.db.close()
        engine.dispose()


if __name__ == "__main__":
    configure_logging("INFO", json_lines=True)
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
