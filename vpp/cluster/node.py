"""What a process of a cluster runs besides the single-process daemon's parts: its name, and by
role, its share of the gateways (``poller``) or the planner lock (``planner``)."""

from __future__ import annotations

from dataclasses import dataclass

from vpp.cluster.membership import GatewayShare


@dataclass(frozen=True)
class ClusterNode:
    """``share``: a poller worker's gateways (None for the planner)."""

    worker_id: str
    role: str
    share: GatewayShare | None = None
