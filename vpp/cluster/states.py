"""The planner's view of the devices in a cluster: it polls none, so the latest state of each
device is the newest stored reading (written by the poller workers, :mod:`vpp.cluster.ingest`)
and its status (``active`` / ``offline``, set by the poller that owns it). Read every poll
interval into the fleet runtime, where the control loop, the planner and the API read them as
in a single process (:meth:`vpp.daemon.fleet_runtime.FleetRuntime.set_remote_states`).

What the table does not hold is not there: the upward flexibility (``flex_up_kw``, 0 here),
the indoor temperature and other per-kind details of a reading; a reading is as old as the
poller's last flush (one poll cycle). ``max_age_s``: older readings are not taken as the
device's state (it is shown without one).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlmodel import Session

from device_adapters.protocol import DeviceState
from vpp.daemon.fleet_sync import LIVE_DEVICE

if TYPE_CHECKING:
    from vpp.daemon.fleet_runtime import FleetRuntime, RemoteDevice
    from vpp.daemon.infra import Infra


def latest_states(s: Session, since: datetime) -> dict[int, RemoteDevice]:
    """Device -> (name, online, its newest reading with a power since ``since``, or None)."""
    from vpp.daemon.fleet_runtime import RemoteDevice

    out = {int(i): RemoteDevice(str(n), st == "active", None) for i, n, st in s.execute(text(
        "SELECT id, name, status FROM device WHERE status = ANY(:st)"),
        {"st": list(LIVE_DEVICE)}).all()}
    rows = s.execute(text(
        "SELECT DISTINCT ON (device_id) device_id, ts, power_kw, energy_kwh, soc_pct, "
        "available, flexibility_kw, site_import_kw FROM telemetry "
        "WHERE ts > :since AND power_kw IS NOT NULL AND device_id = ANY(:d) "
        "ORDER BY device_id, ts DESC"), {"since": since, "d": sorted(out)}).all()
    for dev, ts, kw, kwh, soc, avail, flex, site in rows:
        d = out[int(dev)]
        out[int(dev)] = RemoteDevice(d.name, d.online, DeviceState(
            int(dev), ts, float(kw), kwh, soc, None, bool(avail), float(flex or 0.0), 0.0,
            site_import_kw=site))
    return out


class RemoteStates:
    def __init__(self, infra: Infra, fleet: FleetRuntime, max_age_s: float = 600.0) -> None:
        self.infra = infra
        self.fleet = fleet
        self.max_age_s = max_age_s

    async def step(self) -> None:
        since = self.infra.clock() - timedelta(seconds=self.max_age_s)
        self.fleet.set_remote_states(await self.infra.db.run(latest_states, since))
