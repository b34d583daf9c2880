"""``vpp serve`` as several processes over PostgreSQL (``[cluster]``, docs/scale.md).

* :mod:`vpp.cluster.share`: which live poller worker should own which gateway (rendezvous
  hashing), a pure function.
* :mod:`vpp.cluster.leases`: workers' heartbeats and gateway leases in the database (SQL).
* :mod:`vpp.cluster.membership`: a poller worker's share of the gateways, kept by a loop.
* :mod:`vpp.cluster.ingest`: telemetry batches by COPY, written only for gateways whose lease
  the writer holds (fenced), never twice.
* :mod:`vpp.cluster.commands`, :mod:`vpp.cluster.executor`, :mod:`vpp.cluster.notify`:
  setpoints through the ``device_command`` table and LISTEN/NOTIFY, executed by the gateway's
  owner exactly once; :mod:`vpp.cluster.remote`: the planner's side of them, behind
  ``FleetRuntime.apply`` / ``release``.
* :mod:`vpp.cluster.planner_lock`: the planner/settlement role under a PostgreSQL advisory lock;
  :mod:`vpp.cluster.states`: the planner's view of the devices, from the stored readings.
* :mod:`vpp.cluster.node`: what a process of each role holds (built in
  :func:`vpp.daemon.parts.build_parts`, its loops added in :class:`vpp.server.Daemon`).

SQLite runs the single-process role ``all`` only (:func:`vpp.config_cluster.role_error`).
"""
