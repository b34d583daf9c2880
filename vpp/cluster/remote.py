"""The planner's write path to devices it does not poll: a command in ``device_command``
(:mod:`vpp.cluster.commands`), waited for until the owning worker reports it confirmed or
failed, and handed back as the :class:`SetpointResult` an in-process write returns, so dispatch
(:mod:`vpp.daemon.dispatch`) records it the same way. It is reached through
:meth:`vpp.daemon.fleet_runtime.FleetRuntime.apply` / ``release``: one setpoint path for the
single process and the cluster.

Waiting: one query for every command still waited for, every ``poll_s`` (0.1 s), whatever their
number. A command not back within ``cluster.command_timeout_s`` is failed if no worker took
it yet (it is then never executed); one already claimed is reported failed here ("not confirmed
in time") while its worker's outcome is still recorded in the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from device_adapters.protocol import SetpointResult
from vpp.cluster import commands
from vpp.cluster.commands import Done
from vpp.config_cluster import ClusterSettings
from vpp.daemon.dbexec import Db

log = logging.getLogger("vpp.cluster.remote")


class RemoteSetpoints:
    def __init__(self, db: Db, settings: ClusterSettings, poll_s: float = 0.1) -> None:
        self.db = db
        self.settings = settings
        self.poll_s = poll_s
        self._waiting: dict[int, asyncio.Future[Done]] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def _send(self, device_id: int, setpoint_kw: float | None) -> Done | str:
        """The command's outcome, or why there is none."""
        try:
            cid = await self.db.run(commands.enqueue, device_id, setpoint_kw)
        except KeyError:
            return "device is not enrolled"
        fut: asyncio.Future[Done] = asyncio.get_running_loop().create_future()
        self._waiting[cid] = fut
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="vpp-command-results")
        timeout = self.settings.command_timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            why = f"no worker confirmed it within {timeout:g} s (command {cid})"
            if not await self.db.run(commands.give_up, cid, why):
                why += "; a worker holds it, its outcome will be recorded"
            return why
        finally:
            self._waiting.pop(cid, None)

    async def _watch(self) -> None:
        while self._waiting:
            done = await self.db.run(commands.results, list(self._waiting))
            for cid, d in done.items():
                fut = self._waiting.get(cid)
                if fut is not None and not fut.done():
                    fut.set_result(d)
            await asyncio.sleep(self.poll_s)

    async def apply(self, device_id: int, setpoint_kw: float) -> SetpointResult:
        out = await self._send(device_id, setpoint_kw)
        if isinstance(out, str):
            return SetpointResult(device_id, setpoint_kw, 0.0, False, None, False, out)
        return out.outcome.result(device_id, setpoint_kw)

    async def release(self, device_id: int) -> str | None:
        """Release the device through its owner; the error, None when released."""
        out = await self._send(device_id, None)
        if isinstance(out, str):
            return out
        return out.outcome.error if out.outcome.status != commands.CONFIRMED else None

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
