"""Prometheus metrics of one daemon, in its own registry (no process-global state).

Served at ``/metrics`` in the text exposition format. Names carry units (``_kw``, ``_seconds``,
``_yuan``); per-event series are labelled with the event id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.devices = Gauge("vpp_devices", "Enrolled devices by status", ["status"], registry=r)
        self.devices_online = Gauge("vpp_devices_online", "Devices answering polls", registry=r)
        self.poll_latency = Histogram(
            "vpp_poll_latency_seconds", "Time to poll one device", registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.poll_cycle = Histogram(
            "vpp_poll_cycle_seconds", "Time to poll the whole fleet once", registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )
        self.poll_errors = Counter("vpp_poll_errors", "Failed device polls", registry=r)
        self.heartbeat_errors = Counter("vpp_heartbeat_errors", "Failed device heartbeats",
                                        registry=r)
        self.setpoints_reasserted = Counter("vpp_setpoints_reasserted", "Setpoints written "
                                            "again: the device dropped them (watchdog)", registry=r)
        self.solve_seconds = Histogram(
            "vpp_solve_seconds", "Scheduler solve time", registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self.plans = Counter("vpp_plans", "Dispatch plans made", ["reason"], registry=r)
        self.setpoints = Counter(
            "vpp_setpoints_written", "Setpoint writes by outcome", ["outcome"], registry=r
        )
        self.dispatch_seconds = Histogram(
            "vpp_dispatch_seconds", "Time to write the setpoints of one interval", registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )
        self.call_to_dispatch = Histogram(
            "vpp_call_to_dispatch_seconds",
            "Real-time call received to every setpoint written", registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self.grid_calls = Counter(
            "vpp_grid_calls", "Grid calls received", ["source", "decision"], registry=r
        )
        self.requested_kw = Gauge(
            "vpp_event_requested_kw", "Reduction requested by the grid", ["event_id"], registry=r
        )
        self.declared_kw = Gauge(
            "vpp_event_declared_kw", "Capacity we declared", ["event_id"], registry=r
        )
        self.delivered_kw = Gauge(
            "vpp_event_delivered_kw", "Response delivered now (baseline minus metered)",
            ["event_id"], registry=r,
        )
        self.fleet_power_kw = Gauge(
            "vpp_fleet_power_kw", "Metered power of the fleet (consumption > 0)", registry=r
        )
        self.settled_yuan = Gauge(
            "vpp_settled_yuan", "Money settled, all events (from the database)", ["kind"],
            registry=r,
        )
        self.settlements = Counter("vpp_settlements", "Events settled", registry=r)
        self.loop_up = Gauge("vpp_loop_up", "1 while a supervised loop runs", ["loop"], registry=r)
        self.loop_restarts = Counter(
            "vpp_loop_restarts", "Supervised loop restarts after a failure", ["loop"], registry=r
        )

        self.forecast_state = Gauge(
            "vpp_forecast_state", "1 for the load forecast's current state "
            "(ok, insufficient_history, error, not_run)", ["state"], registry=r,
        )
        self.forecast_sites = Gauge(
            "vpp_forecast_sites", "Sites enrolled (total) and with a load forecast (forecast)",
            ["which"], registry=r,
        )
        self.forecast_refreshes = Counter(
            "vpp_forecast_refreshes", "Load forecast refresh attempts by outcome "
            "(refit, refresh, insufficient_history, error)", ["outcome"], registry=r,
        )
        self.forecast_seconds = Histogram(
            "vpp_forecast_seconds", "Time to read, fit (when due) and forecast", registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
        )
        self.forecast_origin = Gauge(
            "vpp_forecast_origin_timestamp_seconds", "First interval of the latest forecast",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
