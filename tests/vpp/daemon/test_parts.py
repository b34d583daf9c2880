"""The daemon's object graph (:func:`vpp.daemon.parts.build_parts`): one of each part, shared by
the parts that work with it, every collaborator passed in its constructor and none optional."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

from sqlalchemy import Engine

from tests.vpp.daemon.harness import daemon_settings
from vpp.daemon.control import ControlLoop
from vpp.daemon.dbexec import Db
from vpp.daemon.enrolment_jobs import EnrolmentJobs
from vpp.daemon.fleet_runtime import FleetRuntime
from vpp.daemon.forecasts import ForecastRefresher
from vpp.daemon.infra import Infra
from vpp.daemon.intake import Intake
from vpp.daemon.openadr_ven import Ven
from vpp.daemon.overrides import OverrideWatch
from vpp.daemon.parts import DaemonParts, build_parts
from vpp.daemon.planning import Planner
from vpp.daemon.settle import Settler

PARTS = (FleetRuntime, ForecastRefresher, Planner, ControlLoop, Intake, EnrolmentJobs, Settler,
         OverrideWatch, Ven)
#: collaborators with a default that builds the real one (not a missing part); ``cluster``:
#: the single process's link (vpp.cluster.link.SINGLE), a poller's or planner's otherwise
DEFAULTED = {(FleetRuntime, "poller"), (FleetRuntime, "cluster")}


async def test_the_parts_share_one_fleet_one_control_loop_one_infra(sqlite_engine: Engine,
                                                                    tmp_path: Path) -> None:
    infra = Infra.create(daemon_settings(tmp_path, str(sqlite_engine.url)), Db(sqlite_engine))
    parts = build_parts(infra)
    try:
        fleet = parts.fleet
        for holder in (parts.control, parts.control.planner, parts.control.overrides,
                       parts.intake, parts.enrolment):
            assert holder.fleet is fleet, type(holder).__name__
        assert parts.intake.control is parts.control
        assert parts.intake.forecasts is parts.forecasts
        for part in (fleet, parts.forecasts, parts.control, parts.control.planner,
                     parts.control.overrides, parts.intake, parts.enrolment, parts.settler):
            assert part.infra is infra, type(part).__name__
    finally:
        await parts.close()


def test_no_part_takes_an_optional_collaborator() -> None:
    """A part that needs another gets it in its constructor, required; the graph holds every
    part (the ``Services`` bag of optional parts and its ``extra`` dict are gone)."""
    for cls in PARTS:
        for name, p in inspect.signature(cls.__init__).parameters.items():
            if name == "self" or (cls, name) in DEFAULTED:
                continue
            annotation = str(p.annotation)
            assert "None" not in annotation and "Optional" not in annotation, (cls, name)
            assert p.default is inspect.Parameter.empty, (cls, name)
    for f in dataclasses.fields(DaemonParts):
        assert "None" not in str(f.type) and "Any" not in str(f.type), f.name
