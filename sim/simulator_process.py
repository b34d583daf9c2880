"""The full-stack run's simulator process (:mod:`sim.fleet_process`) seen from the driver, and
the driver's REST client: one command line in, one answer line out."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

import sim
from sim.fullstack_fleet import FullStackError

REPO = Path(sim.__file__).resolve().parents[1]


class SimulatorProcess:
    """``python -m sim.fleet_process``: one command line in, one answer line out."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def start(self, spec: dict[str, Any], work_dir: Path) -> None:
        path = work_dir / "simulators.json"
        path.write_text(json.dumps(spec))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
        with (work_dir / "simulators.log").open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sim.fleet_process", str(path), cwd=str(REPO), env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                limit=1 << 20)

    async def ready(self, timeout_s: float) -> int:
        line = await asyncio.wait_for(self._line(), timeout_s)
        if not line.startswith("ready "):
            raise FullStackError(f"the simulator process did not start: {line or 'it exited'} "
                                 "(see simulators.log in the work directory)")
        return int(line.split()[1])

    async def _line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        return (await self.proc.stdout.readline()).decode().strip()

    async def command(self, line: str, timeout_s: float = 30.0) -> str:
        assert self.proc is not None and self.proc.stdin is not None
        async with self._lock:
            self.proc.stdin.write(line.encode() + b"\n")
            await self.proc.stdin.drain()
            return await asyncio.wait_for(self._line(), timeout_s)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), 30.0)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.proc.kill()
            await self.proc.wait()


class Api:
    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http, self.url, self.headers = http, url, {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.url + path, json=body,
                                     headers=self.headers) as r:
            data = await r.json(content_type=None)
            if r.status >= 400:
                raise FullStackError(f"{method} {path}: HTTP {r.status}: {data}")
            return data
