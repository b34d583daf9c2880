"""Enrolment probes in the background, with progress the API can report.

``start(gateway_id)`` runs :func:`vpp.enrolment.probe_gateway` (the same probe as
``vpp gateway add --probe``) as a task; the job moves ``queued -> running -> done | failed``
and ends with each device's outcome. The gateway and device rows carry the durable result
(``enrolment_state``, ``last_error``, device ``status``); this in-memory progress is for
following a probe while it runs. A gateway that comes out active is picked up by the poller.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from vpp.domain.probes import ProbeProgress
from vpp.enrolment import probe_gateway
from vpp.errors import VppError
from vpp.gateway_hosts import HostPolicy
from vpp.models import Device

if TYPE_CHECKING:
    from vpp.daemon.fleet_runtime import FleetRuntime
    from vpp.daemon.infra import Infra

log = logging.getLogger("vpp.daemon.enrolment")


@dataclass
class _Job:
    progress: ProbeProgress
    task: asyncio.Task[None] | None = None
    history: list[str] = field(default_factory=list)


class EnrolmentJobs:
    """Background probes of enrolled gateways; a finished probe asks ``fleet`` to reload."""

    def __init__(self, infra: Infra, fleet: FleetRuntime) -> None:
        self.infra = infra
        self.fleet = fleet
        self._jobs: dict[int, _Job] = {}

    def progress(self, gateway_id: int | None) -> ProbeProgress | None:
        job = self._jobs.get(int(gateway_id or 0))
        return job.progress.model_copy() if job else None

    def start(self, gateway_id: int) -> ProbeProgress:
        job = self._jobs.get(gateway_id)
        if job is not None and job.task is not None and not job.task.done():
            return job.progress  # already probing
        job = _Job(ProbeProgress(state="queued", step="waiting to probe", done=0, total=0,
                                 started_at=None, finished_at=None, message=None))
        self._jobs[gateway_id] = job
        job.task = asyncio.create_task(self._run(gateway_id, job), name=f"vpp-probe-{gateway_id}")
        return job.progress

    async def _run(self, gateway_id: int, job: _Job) -> None:
        infra = self.infra
        p = job.progress

        def count(s: Session) -> int:
            return len(s.exec(select(Device.id).where(Device.gateway_id == gateway_id)).all())

        try:
            p.total = await infra.db.run(count)
            p.state, p.step, p.started_at = "running", "connecting and probing devices", \
                datetime.now(infra.clock().tzinfo)
            report = await probe_gateway(
                infra.db.engine, gateway_id, infra.settings.polling,
                hosts=HostPolicy.from_settings(infra.settings.enrolment))
            p.devices = {str(d.unit_id): "active" if d.ok else f"failed: {d.reason}"
                         for d in report.devices}
            p.done = len(report.devices)
            p.state = "done" if report.state == "active" else "failed"
            p.step = f"gateway {report.state}"
            p.message = report.error
            log.info("gateway probed", extra={"gateway_id": gateway_id, "state": report.state,
                                              "error": report.error})
            self.fleet.request_refresh()
        except VppError as exc:
            p.state, p.step, p.message = "failed", "probe failed", exc.message
            log.error("probe failed: %s", exc.message, extra={"gateway_id": gateway_id})
        except Exception as exc:  # noqa: BLE001 -- reported to the owner, never crashes the daemon
            p.state, p.step, p.message = "failed", "probe failed", f"{type(exc).__name__}: {exc}"
            log.exception("probe crashed", extra={"gateway_id": gateway_id})
        finally:
            p.finished_at = datetime.now(infra.clock().tzinfo)

    async def wait(self) -> None:
        """Until every probe started so far has finished (each writes the gateway's and its
        devices' state when it ends)."""
        await asyncio.gather(*(j.task for j in self._jobs.values() if j.task is not None),
                             return_exceptions=True)

    async def close(self) -> None:
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
