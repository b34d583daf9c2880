"""The full-stack fleet's Modbus simulators in a process of their own.

``python -m sim.fleet_process SPEC.json`` builds the sample of :func:`sim.fullstack_fleet.
build_sample` (SPEC: ``scenario`` as a validated model dump, ``n_devices``, ``base_port``,
``accel``, ``start``), serves its gateways on 127.0.0.1, applies the scenario behaviour to the
devices' physics at every interval start, and answers one line per command on stdin:

    release M0                   start the simulated clock (M0: the driver's time.monotonic())
    fault PORT UNIT KIND [VALUE] a device fault (sim.control: silent, ignore-writes, ...)
    ocpp URL PASSWORDS.json      start the sample's OCPP charge points (sim.fullstack_ocpp),
                                 connecting to the central system at URL with those passwords
    ocpp-fault IDENTITY KIND     silent (the charge point disconnects and stays away) or
                                 reject-profiles (it rejects profiles and drops those it holds)
    physics PICKLE               every device's physics continues from these (device name ->
                                 model: the driver's history ends where the run starts)
    stats                        JSON: requests served, event-loop lag (max and p99, seconds),
                                 the charge points' boots and profiles accepted

It prints ``ready N`` once N gateways listen, and stops at end of input. Why a process: in
production the devices are elsewhere. Serving ~320 gateways in the daemon's own event loop
(and its GIL) made the two starve each other: replies came late, polls timed out and devices
were marked offline although nothing was wrong with them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.control import CommandError, apply_command
from sim.device import SimulatedDevice
from sim.fullstack_fleet import Sample, SharedClock, build_gateways, build_sample, physics_seed
from sim.fullstack_ocpp import build_charge_points
from sim.ocpp_chargepoint import SimChargePoint
from sim.ocpp_fleet import keep_connected
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
    ocpp = ChargePoints(scn, sample, clock, float(spec["accel"]))
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
                                 "loop_lag": monitor.summary(), "ocpp": ocpp.stats()}))
            elif words[0] == "physics" and len(words) == 2:
                _say(hand_over(pickle.loads(Path(words[1]).read_bytes()), sample, by_port, ocpp))
            elif words[0].startswith("ocpp"):
                _say(await ocpp.command(words))
            else:
                try:
                    _say(apply_command(by_port, line))
                except CommandError as exc:
                    _say(f"error: {exc}")
    finally:
        await ocpp.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for g in started:
            await g.stop()


class ChargePoints:
    """The sample's OCPP charge points, once the driver has registered them (``ocpp``)."""

    def __init__(self, scn: Scenario, sample: Sample, clock: SharedClock, accel: float) -> None:
        self.scn, self.sample, self.clock, self.accel = scn, sample, clock, accel
        self.sims: dict[str, SimChargePoint] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def command(self, words: list[str]) -> str:
        if words[0] == "ocpp" and len(words) == 3:
            passwords = json.loads(Path(words[2]).read_text())
            sims = build_charge_points(self.sample.charge_points, passwords, self.clock,
                                       self.accel, lambda d: physics_seed(self.scn, d))
            for s in sims:
                self.sims[s.identity] = s
                self.tasks[s.identity] = asyncio.create_task(keep_connected(s, words[1], 2.0))
            return f"ok {len(sims)}"
        if words[0] == "ocpp-fault" and len(words) == 3 and words[1] in self.sims:
            sim, kind = self.sims[words[1]], words[2]
            if kind == "silent":
                task = self.tasks[sim.identity]
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return "ok"
            if kind == "reject-profiles":
                sim.reject_profiles = True
                sim.clear_profile(None)
                return "ok"
        return f"error: unknown command {' '.join(words)!r}"

    def stats(self) -> dict[str, object]:
        sims = list(self.sims.values())
        return {"charge_points": len(sims),
                "booted": {v: sum(1 for s in sims if s.version == v and s.booted.is_set())
                           for v in ("1.6", "2.0.1")},
                "profiles_accepted": {v: sum(s.profiles_accepted for s in sims
                                             if s.version == v) for v in ("1.6", "2.0.1")}}

    async def stop(self) -> None:
        for s in self.sims.values():
            s.stopping = True
        for t in self.tasks.values():
            t.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


def hand_over(physics: dict[str, Any], sample: Sample, by_port: dict[int, SimGateway],
              ocpp: ChargePoints) -> str:
    """Swap every served device's physics for the history's (its state at the run's start)."""
    n = 0
    for name, (port, unit) in sample.where.items():
        dev = by_port[port].devices[unit]
        dev.physics = physics[name]
        dev.physics.step(0.0, dev.setpoint_kw)
        n += 1
    for identity, cp in ocpp.sims.items():
        cp.connectors[1].physics = physics[identity]
        n += 1
    return f"ok {n}"


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
