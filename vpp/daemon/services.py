"""The daemon's parts, built once at start-up and passed to the API and the loops.

No module-level state: the aiohttp app holds one :class:`Services` under
:data:`vpp.api.context.SERVICES`; tests build their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vpp.config import Settings
from vpp.daemon.dbexec import Db
from vpp.daemon.metrics import Metrics
from vpp.daemon.supervisor import Supervisor

if TYPE_CHECKING:
    from vpp.daemon.control import ControlLoop
    from vpp.daemon.enrolment_jobs import EnrolmentJobs
    from vpp.daemon.fleet_runtime import FleetRuntime
    from vpp.daemon.forecasts import ForecastRefresher
    from vpp.daemon.intake import Intake


def utc_now() -> datetime:
    return datetime.now(UTC)


def real_rate() -> float:
    """The real clock runs one second per second."""
    return 1.0


@dataclass
class Services:
    settings: Settings
    db: Db
    metrics: Metrics
    supervisor: Supervisor
    clock: Callable[[], datetime] = utc_now
    #: simulated seconds per real second of ``clock`` (``vpp serve --sim-clock``; 1 otherwise):
    #: what device watchdogs, which count on the devices' clock, are fed against
    clock_rate: Callable[[], float] = real_rate
    fleet: FleetRuntime | None = None
    intake: Intake | None = None
    control: ControlLoop | None = None
    enrolment: EnrolmentJobs | None = None
    forecasts: ForecastRefresher | None = None
    started_at: datetime = field(default_factory=utc_now)
    extra: dict[str, Any] = field(default_factory=dict)
