"""What a process of a cluster runs besides the single-process daemon's parts: its name, and by
role, its share of the gateways, the command executor and its LISTEN (``poller``), or the
command path to the devices and the planner lock (``planner``)."""

from __future__ import annotations

from dataclasses import dataclass

from vpp.cluster.executor import CommandExecutor
from vpp.cluster.membership import GatewayShare
from vpp.cluster.notify import Listener
from vpp.cluster.planner_lock import PlannerLock
from vpp.cluster.remote import RemoteSetpoints
from vpp.cluster.states import RemoteStates


@dataclass(frozen=True)
class PollerNode:
    """A poller worker: its gateways, and the commands it executes for them."""

    share: GatewayShare
    executor: CommandExecutor
    listener: Listener


@dataclass(frozen=True)
class PlannerNode:
    """The planner: the role's lock, the devices' states from the database, setpoints out as
    commands."""

    lock: PlannerLock
    states: RemoteStates
    remote: RemoteSetpoints


@dataclass(frozen=True)
class ClusterNode:
    worker_id: str
    role: str
    poller: PollerNode | None = None
    planner: PlannerNode | None = None

    @property
    def share(self) -> GatewayShare | None:
        return self.poller.share if self.poller is not None else None

    async def close(self) -> None:
        """After the fleet is closed (its telemetry flushed under the leases it still holds):
        leave the cluster, so that the others take its gateways at once."""
        if self.poller is not None:
            await self.poller.listener.close()
            await self.poller.share.leave()
        if self.planner is not None:
            await self.planner.remote.close()
            await self.planner.lock.close()
