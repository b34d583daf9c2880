"""The ``[cluster]`` section: ``vpp serve`` as one process (``role = "all"``, the default) or as
several processes over PostgreSQL (:mod:`vpp.cluster`, docs/scale.md).

``role``: ``all`` runs everything in one process (the only role on SQLite); ``poller`` polls
a share of the gateways and executes the setpoint commands of the gateways it owns;
``planner`` takes grid calls, plans, dispatches through the command table and settles, while it
holds the planner lock (a standby waits for it). ``worker_id``: this process's name in the
``cluster_worker`` table (default ``<hostname>-<pid>``). Times in real seconds:
``heartbeat_s`` between lease renewals, ``lease_s`` until a worker that stopped renewing is
counted dead and its gateways are taken over (the stated takeover time is at most
``lease_s + heartbeat_s``), ``command_sweep_s`` between looks at the command table besides
NOTIFY (a notification is not durable), ``command_timeout_s`` a dispatcher waits for a command
to come back confirmed or failed, ``planner_retry_s`` between a standby's tries of the lock.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ClusterRole = Literal["all", "poller", "planner"]


class ClusterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: ClusterRole = "all"
    worker_id: str | None = Field(default=None, min_length=1, max_length=100)
    heartbeat_s: float = Field(default=10.0, gt=0)
    lease_s: float = Field(default=30.0, gt=0)
    command_sweep_s: float = Field(default=2.0, gt=0)
    command_timeout_s: float = Field(default=30.0, gt=0)
    planner_retry_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _lease_longer_than_heartbeat(self) -> ClusterSettings:
        if self.lease_s < 2 * self.heartbeat_s:
            raise ValueError(f"cluster.lease_s ({self.lease_s:g}) must be at least twice "
                             f"cluster.heartbeat_s ({self.heartbeat_s:g}): a live worker must "
                             "renew its lease before it expires")
        return self


def role_error(role: str, database_url: str | None) -> str | None:
    """Why ``role`` cannot run on this database (None: it can): only role ``all`` runs on
    SQLite, the several-process roles need PostgreSQL (leases, commands, the planner lock)."""
    if role == "all":
        return None
    url = database_url or ""
    if url.startswith(("postgresql", "postgres:")):
        return None
    return (f"cluster.role = {role!r} needs PostgreSQL (set VPP_DATABASE_URL to a postgresql:// "
            "URL); SQLite runs the single-process role \"all\" only")


def worker_name(settings: ClusterSettings) -> str:
    """This process's name in the cluster: ``worker_id``, else ``<hostname>-<pid>``."""
    import os
    import socket

    return settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"
