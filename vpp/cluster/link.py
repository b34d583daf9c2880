"""How a process's fleet runtime takes part in a cluster, by role: a poller polls only its
``share`` of the gateways; the planner reaches the devices others poll through ``remote``
(commands); the single process (role ``all``, :data:`SINGLE`) has neither and polls every
gateway itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vpp.cluster.membership import GatewayShare
    from vpp.cluster.remote import RemoteSetpoints


@dataclass(frozen=True)
class FleetLink:
    share: GatewayShare | None = None  # role poller
    remote: RemoteSetpoints | None = None  # role planner


#: the single process: every gateway polled here, no device elsewhere
SINGLE = FleetLink()
