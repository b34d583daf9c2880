"""The daemon's object graph: each part built once, with the parts it works with passed to its
constructor (no registry, no optional components).

:func:`build_parts` is the one place the graph is wired; ``vpp serve``
(:class:`vpp.server.Daemon`) and the tests build it the same way. Order of construction follows
the dependencies: fleet -> forecasts -> planner -> control -> intake, enrolment, settlement.
Building starts nothing: loops are added to ``infra.supervisor`` by the daemon, and the first
poll is the fleet's ``refresh()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from vpp.cluster import commands
from vpp.cluster.executor import COMMANDS_LOOP, CommandExecutor
from vpp.cluster.ingest import FencedWriter
from vpp.cluster.link import FleetLink
from vpp.cluster.membership import GatewayShare
from vpp.cluster.node import ClusterNode, PlannerNode, PollerNode
from vpp.cluster.notify import Listener
from vpp.cluster.planner_lock import PlannerLock
from vpp.cluster.remote import RemoteSetpoints
from vpp.cluster.states import RemoteStates
from vpp.config import Settings
from vpp.config_cluster import worker_name
from vpp.daemon.control import ControlLoop
from vpp.daemon.dbexec import Db
from vpp.daemon.enrolment_jobs import EnrolmentJobs
from vpp.daemon.fleet_runtime import FleetRuntime
from vpp.daemon.forecasts import ForecastRefresher
from vpp.daemon.infra import Infra
from vpp.daemon.intake import Intake
from vpp.daemon.metrics import Metrics
from vpp.daemon.planning import Planner
from vpp.daemon.settle import Settler
from vpp.daemon.supervisor import Supervisor
from vpp.daemon.tou_dispatch import TouDispatcher
from vpp.poller import Poller
from vpp.telemetry_store import TelemetryBuffer


@dataclass(frozen=True)
class DaemonParts:
    """Every part of one daemon, all present."""

    infra: Infra
    fleet: FleetRuntime
    forecasts: ForecastRefresher
    control: ControlLoop
    intake: Intake
    enrolment: EnrolmentJobs
    settler: Settler
    tou: TouDispatcher  # batteries between calls ([scheduler] tou_schedule)
    #: this process's part in a cluster ([cluster] role; "all": neither poller nor planner)
    cluster: ClusterNode

    # the infrastructure, for the API's handlers
    @property
    def settings(self) -> Settings:
        return self.infra.settings

    @property
    def db(self) -> Db:
        return self.infra.db

    @property
    def metrics(self) -> Metrics:
        return self.infra.metrics

    @property
    def supervisor(self) -> Supervisor:
        return self.infra.supervisor

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.infra.clock

    async def close(self) -> None:
        """Stop background probes, close device connections, the solver pool and the database
        executor (after the loops are stopped)."""
        await self.enrolment.close()
        await self.fleet.close()  # its telemetry flushed under the leases it still holds
        await self.cluster.close()
        self.control.close()
        self.tou.close()
        self.infra.db.close()


def build_parts(infra: Infra, poller: Poller | None = None) -> DaemonParts:
    """The daemon's parts over ``infra``; ``poller``: the fleet's poller (a fresh one on the
    database by default)."""
    cl = infra.settings.cluster
    wid = worker_name(cl)
    share = GatewayShare(infra.db, cl, wid) if cl.role == "poller" else None
    remote = RemoteSetpoints(infra.db, cl) if cl.role == "planner" else None
    if share is not None and poller is None:
        engine = infra.db.engine  # a poller worker: fenced COPY batches (vpp.cluster.ingest)
        buffer = TelemetryBuffer(engine, infra.settings.polling.telemetry_batch_size,
                                 writer=FencedWriter(wid))
        poller = Poller(engine, infra.settings.polling, buffer=buffer)
    fleet = FleetRuntime(infra, poller, cluster=FleetLink(share, remote))
    node = _cluster_node(infra, wid, fleet, share, remote)
    forecasts = ForecastRefresher(infra)
    control = ControlLoop(infra, fleet, Planner(infra, fleet))
    intake = Intake(infra, fleet, forecasts, control)
    return DaemonParts(infra=infra, fleet=fleet, forecasts=forecasts, control=control,
                       intake=intake, enrolment=EnrolmentJobs(infra, fleet),
                       settler=Settler(infra), tou=TouDispatcher(infra, fleet, control.planner),
                       cluster=node)


def _cluster_node(infra: Infra, wid: str, fleet: FleetRuntime, share: GatewayShare | None,
                  remote: RemoteSetpoints | None) -> ClusterNode:
    """This process's part in a cluster (neither poller nor planner for role ``all``)."""
    cl = infra.settings.cluster
    poller = planner = None
    if share is not None:
        wake = infra.supervisor.wake
        listener = Listener(infra.db.engine, lambda: _channel(infra),
                            lambda: wake(COMMANDS_LOOP), wait_s=cl.command_sweep_s)
        poller = PollerNode(share, CommandExecutor(infra.db, cl, share, fleet), listener)
    if remote is not None:
        planner = PlannerNode(PlannerLock(infra.db.engine, wid), RemoteStates(infra, fleet),
                              remote)
    return ClusterNode(wid, cl.role, poller, planner)


def _channel(infra: Infra) -> str:
    """The commands' NOTIFY channel of this database schema (read once, on connecting)."""
    from vpp.db import session_scope

    with session_scope(infra.db.engine) as s:
        return commands.channel(s)
