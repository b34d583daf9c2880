"""A poller worker executes the setpoint commands of the gateways it owns, exactly once.

Each step (every ``cluster.command_sweep_s``, and at once when the ``commands`` NOTIFY
arrives): claim the commands of the gateways this worker holds *and already polls* (its
adapters are built), then execute them through the fleet's one write path
(:meth:`vpp.daemon.fleet_runtime.FleetRuntime.apply`, clamped, written, read back; ``release``
for a command without a setpoint), commands of one device in order, devices concurrently, and
record each outcome. A command *retaken* from a worker that lost the gateway after claiming it
(it may have written it and died before reporting) is not written blindly: the device is read
first, and if its registers already hold the setpoint the command is confirmed with
``written = false``; otherwise, if it is still within ``command_timeout_s``, it is written.
Between the write and the record the failpoint ``command.written`` (:mod:`vpp.failpoints`)
lets a test SIGKILL the worker exactly there.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from vpp import failpoints
from vpp.cluster import commands
from vpp.cluster.commands import CONFIRMED, FAILED, Claimed, Outcome
from vpp.cluster.membership import GatewayShare
from vpp.config_cluster import ClusterSettings
from vpp.daemon.dbexec import Db

if TYPE_CHECKING:
    from vpp.daemon.fleet_runtime import FleetRuntime

log = logging.getLogger("vpp.cluster.executor")

#: the supervised loop that runs :meth:`CommandExecutor.step`
COMMANDS_LOOP = "commands"


class CommandExecutor:
    def __init__(self, db: Db, settings: ClusterSettings, share: GatewayShare,
                 fleet: FleetRuntime) -> None:
        self.db = db
        self.settings = settings
        self.share = share
        self.fleet = fleet
        self.executed = 0
        self.confirmed_held = 0  # retaken commands the device already held (nothing written)

    def _polled(self) -> set[int]:
        mine = self.share.polled()
        return {u.gateway_id for u in self.fleet.poller.gateways if u.gateway_id in mine}

    async def step(self) -> None:
        if not self.share.current():  # its leases may be another worker's by now
            return
        todo = await self.db.run(commands.claim, self.share.worker_id, self._polled(),
                                 self.settings.command_timeout_s)
        if not todo:
            return
        by_device: dict[int, list[Claimed]] = defaultdict(list)
        for c in todo:
            by_device[c.device_id].append(c)
        await asyncio.gather(*(self._device(cs) for cs in by_device.values()))

    async def _device(self, cs: list[Claimed]) -> None:
        for c in cs:
            out = await self._execute(c)
            await failpoints.reach_async("command.written")
            if not await self.db.run(commands.finish, self.share.worker_id, c.id, out):
                log.warning("command outcome not recorded: the gateway moved meanwhile",
                            extra={"command_id": c.id, "device_id": c.device_id})
            self.executed += 1

    async def _execute(self, c: Claimed) -> Outcome:
        if c.setpoint_kw is None:
            errors = await self.fleet.release([c.device_id])
            err = errors.get(c.device_id)
            return Outcome(FAILED if err else CONFIRMED, None, None, False, err is None, True,
                           err)
        if c.retaken:
            if await self.fleet.already_holds(c.device_id, c.setpoint_kw):
                self.confirmed_held += 1
                log.info("retaken command: the device already holds it, not written again",
                         extra={"command_id": c.id, "device_id": c.device_id})
                return Outcome(CONFIRMED, c.setpoint_kw, c.setpoint_kw, False, True, False, None)
            if c.age_s > self.settings.command_timeout_s:
                return Outcome(FAILED, None, None, False, False, False,
                               "expired: its worker died and the device does not hold it")
        return Outcome.of(await self.fleet.apply(c.device_id, c.setpoint_kw))
