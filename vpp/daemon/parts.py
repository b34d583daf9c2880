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

from vpp.config import Settings
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
        await self.fleet.close()
        self.control.close()
        self.tou.close()
        self.infra.db.close()


def build_parts(infra: Infra, poller: Poller | None = None) -> DaemonParts:
    """The daemon's parts over ``infra``; ``poller``: the fleet's poller (a fresh one on the
    database by default)."""
    fleet = FleetRuntime(infra, poller)
    forecasts = ForecastRefresher(infra)
    control = ControlLoop(infra, fleet, Planner(infra, fleet))
    intake = Intake(infra, fleet, forecasts, control)
    return DaemonParts(infra=infra, fleet=fleet, forecasts=forecasts, control=control,
                       intake=intake, enrolment=EnrolmentJobs(infra, fleet),
                       settler=Settler(infra), tou=TouDispatcher(infra, fleet, control.planner))
