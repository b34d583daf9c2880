"""The processes of a newcomer's first run: `vpp ...` commands as subprocesses of the real CLI,
run from the repository with only the environment the README tells a user to set, every
stderr kept so that a test can say which process printed a traceback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive free TCP ports on 127.0.0.1 (the simulator's gateways
    take ``--base-port`` .. ``--base-port + n - 1``)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = int(s.getsockname()[1])
        if first + n > 65000:
            continue
        held: list[socket.socket] = []
        try:
            for p in range(first, first + n):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", p))
            return first
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise AssertionError(f"no {n} consecutive free ports on 127.0.0.1")


@dataclass
class Spawned:
    """A long-running `vpp` process: stdout lines collected as they come, stderr in a file."""

    name: str
    proc: asyncio.subprocess.Process
    stderr: Path
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    async def wait_line(self, predicate: Callable[[str], bool], timeout_s: float,
                        what: str, start: int = 0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.lines[start:]:
                if predicate(line):
                    return line
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name}: no {what} within {timeout_s:g} s (exit "
                             f"{self.proc.returncode}); stdout tail {self.lines[-5:]}; stderr "
                             f"tail {self.stderr.read_text()[-2000:]}")

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()

    async def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout_s)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)
        return int(self.proc.returncode or 0)


@dataclass
class Newcomer:
    """Runs `vpp` as a user does from the repository, with ``env`` as their only settings."""

    workdir: Path
    env: dict[str, str]
    stderr_files: dict[str, Path] = field(default_factory=dict)
    commands: list[tuple[str, float, int]] = field(default_factory=list)  # (cmd, seconds, rc)

    def _env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("VPP_")}
        return {**base, "PYTHONPATH": str(REPO_ROOT), **self.env}

    def _stderr(self, name: str) -> Path:
        path = self.workdir / f"stderr-{len(self.stderr_files):02d}-{name}.txt"
        self.stderr_files[name if name not in self.stderr_files
                          else f"{name}#{len(self.stderr_files)}"] = path
        return path

    async def run(self, *args: str, timeout_s: float = 120.0) -> tuple[int, str, str]:
        """``vpp ARGS`` to completion: (exit code, stdout, stderr)."""
        err_path = self._stderr(args[0] + ("-" + args[1] if len(args) > 1 else ""))
        t0 = time.monotonic()
        with err_path.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "vpp.cli.main", *args, cwd=str(REPO_ROOT),
                env=self._env(), stdout=asyncio.subprocess.PIPE, stderr=err,
                stdin=asyncio.subprocess.DEVNULL)
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise AssertionError(f"`vpp {' '.join(args)}` did not end in {timeout_s} s") from None
        rc = int(proc.returncode or 0)
        self.commands.append((" ".join(args), time.monotonic() - t0, rc))
        return rc, out.decode(errors="replace"), err_path.read_text(errors="replace")

    async def ok(self, *args: str, timeout_s: float = 120.0) -> str:
        rc, out, err = await self.run(*args, timeout_s=timeout_s)
        assert rc == 0, f"`vpp {' '.join(args)}` exited {rc}:\n{out[-2000:]}\n{err[-3000:]}"
        return out

    async def spawn(self, name: str, *args: str) -> Spawned:
        err_path = self._stderr(name)
        err = err_path.open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vpp.cli.main", *args, cwd=str(REPO_ROOT), env=self._env(),
            stdout=asyncio.subprocess.PIPE, stderr=err, stdin=asyncio.subprocess.PIPE)
        err.close()  # the child has its own descriptor
        sp = Spawned(name, proc, err_path)
        sp.reader = asyncio.create_task(sp._read())
        return sp

    def tracebacks(self) -> dict[str, str]:
        """The processes whose stderr holds a traceback, with the text around it."""
        out = {}
        for name, path in self.stderr_files.items():
            text = path.read_text(errors="replace") if path.exists() else ""
            i = text.find("Traceback")
            if i >= 0:
                out[name] = text[max(0, i - 500): i + 3000]
        return out


def last_line(text: str) -> str:
    return [x for x in text.splitlines() if x.strip()][-1].strip()


async def wait_for(check: Callable[[], Awaitable[Any]], timeout_s: float, what: str,
                   every_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} (last: {last!r})")


class Api:
    """The daemon's REST API with one token."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session, self.base, self.token = session, base, token

    async def get(self, path: str) -> Any:
        async with self.session.get(f"{self.base}/api/v1{path}",
                                    headers={"Authorization": f"Bearer {self.token}"}) as r:
            body = await r.json()
            assert r.status == 200, (path, r.status, body)
            return body

    async def post(self, path: str, payload: Any) -> tuple[int, Any]:
        async with self.session.post(f"{self.base}/api/v1{path}", json=payload,
                                     headers={"Authorization": f"Bearer {self.token}"}) as r:
            return r.status, await r.json()
