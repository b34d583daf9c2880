"""The full-stack fleet's Modbus simulators in a process of their own.

``python -m sim.fleet_process SPEC.json`` builds the sample of :func:`sim.fullstack_fleet.
build_sample` (SPEC: ``scenario`` as a validated model dump, ``n_devices``, ``base_port``,
``accel``, ``start``), serves its gateways on 127.0.0.1, applies the scenario behaviour to the
devices' physics at every interval start, and answers one line per command on stdin:

    release M0                   start the simulated clock (M0: the driver's time.monotonic())
    fault PORT UNIT KIND [VALUE] a device fault (sim.control: silent, ignore-writes, ...)
    stats                        JSON: requests served, event-loop lag (max and p99, seconds)

It prints ``ready N`` once N gateways listen, and stops at end of input. Why a process: in
production the devices are elsewhere. Serving ~320 gateways in the daemon's own event loop
(and its GIL) made the two starve each other: replies came late, polls timed out and devices
were marked offline although nothing was wrong with them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from sim.control import CommandError, apply_command
from sim.device import SimulatedDevice
from sim.fullstack_fleet import SharedClock, build_gateways, build_sample
from sim.scenarios import behaviour
from sim.scenarios.fleet import ScenarioDevice
from sim.scenarios.scenario import Scenario
from sim.server import SimGateway

log = logging.getLogger("sim.fleet_process")


class LagMonitor:
    """How late the event loop wakes a 50 ms sleep: the simulators' own responsiveness."""

    def __init__(self, period_s: float = 0.05) -> None:
        self.period_s = period_s
        self.lags: list[float] = []

    async def run(self) -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(self.period_s)
            self.lags.append(max(0.0, time.monotonic() - t0 - self.period_s))

    def summary(self) -> dict[str, float]:
        if not self.lags:
            return {"max_s": 0.0, "p99_s": 0.0, "samples": 0}
        a = np.asarray(self.lags)
        return {"max_s": round(float(a.max()), 4), "p99_s": round(float(np.quantile(a, 0.99)), 4),
                "samples": int(a.size)}


async def shape_loop(clock: SharedClock, devices: list[tuple[SimulatedDevice, ScenarioDevice]],
                     temperature_c: pd.Series, interval_minutes: int) -> None:
    """Apply the scenario behaviour to the served devices' physics at every interval start."""
    step = f"{interval_minutes}min"
    last = None
    while True:
        ts = pd.Timestamp(clock.now()).floor(step)
        if ts != last:
            last = ts
            t = float(temperature_c.asof(ts))
            for dev, spec in devices:
                behaviour.update(dev.physics, spec, ts.hour, t)
        await asyncio.sleep(0.1)


async def serve(spec: dict) -> None:
    scn = Scenario.model_validate(spec["scenario"])
    sample = build_sample(scn, int(spec["n_devices"]), int(spec["base_port"]))
    clock = SharedClock(float(spec["accel"]), datetime.fromisoformat(spec["start"]))
    gateways = build_gateways(scn, sample, clock)
    by_port = {g.port: g for g in gateways}
    served = {d.spec.name: d for d in sample.fleet.devices}
    pairs = [(by_port[port].devices[unit], served[name])
             for name, (port, unit) in sample.where.items()]
    started: list[SimGateway] = []
    monitor = LagMonitor()
    tasks: list[asyncio.Task] = []
    try:
        for g in gateways:
            await g.start()
            started.append(g)
        tasks.append(asyncio.create_task(monitor.run()))
        tasks.append(asyncio.create_task(shape_loop(clock, pairs, sample.temperature_c,
                                                    scn.scenario.interval_minutes)))
        _say(f"ready {len(started)}")
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            words = line.split()
            if words[0] == "release":
                clock.release(float(words[1]))
                _say("ok")
            elif words[0] == "stats":
                _say(json.dumps({"gateways": len(started),
                                 "requests": sum(g.requests for g in started),
                                 "loop_lag": monitor.summary()}))
            else:
                try:
                    _say(apply_command(by_port, line))
                except CommandError as exc:
                    _say(f"error: {exc}")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for g in started:
            await g.stop()


def _say(line: str) -> None:
    sys.stdout.write(line.replace("\n", " ") + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    spec = json.loads(Path(argv[0]).read_text())
    try:
        asyncio.run(serve(spec))
    except OSError as exc:  # a port taken between the driver's check and our bind
        _say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
