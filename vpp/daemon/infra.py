"""What every part of the daemon runs on: the settings, the database executor, the metrics, the
loop supervisor and the clock.

Each part (:class:`~vpp.daemon.fleet_runtime.FleetRuntime`, :class:`~vpp.daemon.intake.Intake`,
:class:`~vpp.daemon.control.ControlLoop`, ...) receives this and, in its constructor, the other
parts it works with; nothing is optional and nothing is looked up by name.
:func:`vpp.daemon.parts.build_parts` wires them. No module-level state: tests build their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from vpp.calendar import MarketCalendar
from vpp.config import Settings
from vpp.daemon.dbexec import Db
from vpp.daemon.metrics import Metrics
from vpp.daemon.supervisor import Supervisor


def utc_now() -> datetime:
    return datetime.now(UTC)


def real_rate() -> float:
    """The real clock runs one second per second."""
    return 1.0


@dataclass(frozen=True)
class Infra:
    """``calendar``: the market's interval, zone, working days and seasons, built once from
    the settings (:meth:`vpp.calendar.MarketCalendar.from_settings`); ``clock``: the time everything is timed in (events, intervals, readings, baselines,
    settlement delay), timezone-aware; ``clock_rate``: simulated seconds per real second of
    ``clock`` (``vpp serve --sim-clock``; 1 otherwise), which device watchdogs, counting on the
    devices' clock, are fed against."""

    settings: Settings
    db: Db
    metrics: Metrics
    supervisor: Supervisor
    calendar: MarketCalendar
    clock: Callable[[], datetime] = utc_now
    clock_rate: Callable[[], float] = real_rate

    @classmethod
    def create(cls, settings: Settings, db: Db, *, clock: Callable[[], datetime] = utc_now,
               clock_rate: Callable[[], float] = real_rate) -> Infra:
        """Fresh metrics and a supervisor with the ``[daemon]`` loop back-off."""
        metrics = Metrics()
        d = settings.daemon
        return cls(settings, db, metrics,
                   Supervisor(metrics, d.loop_backoff_base_s, d.loop_backoff_max_s),
                   MarketCalendar.from_settings(settings), clock, clock_rate)
