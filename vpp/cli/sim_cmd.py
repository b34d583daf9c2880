"""``vpp sim``: serve simulated Modbus TCP gateways on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table

from sim.clock import ClockControl, ClockDefinition, FileClock, SimClock, write_definition
from sim.control import read_commands
from sim.device import Clock
from sim.fleet import demo_gateways, synthetic_fleet
from sim.server import SimGateway
from vpp.cli.common import app_context, console
from vpp.config import load_settings
from vpp.errors import ValidationError
from vpp.packaged import DEMO_CONFIG
from vpp.timeutil import zone

app = typer.Typer(help="Simulated devices behind real Modbus TCP servers.", no_args_is_help=True)


SIM_CLOCK_HELP = ("Write the simulated clock to FILE and run on it; `vpp serve --sim-clock FILE` "
                  "then runs on the same time. `clock speed X` / `clock skip 23h` on stdin "
                  "change it for both.")
SIM_START_HELP = ("Simulated time to start at (ISO, e.g. 2026-12-09T11:00; without an offset: "
                  "service.timezone). Default: now. Needs --sim-clock.")


def _clock(ctx: typer.Context, accel: float, sim_clock: Path | None,
           sim_start: str | None) -> tuple[Clock, ClockControl | None]:
    """The simulator's clock: accelerated from now, or the shared clock file (written here)."""
    if sim_clock is None:
        if sim_start is not None:
            raise ValidationError("--sim-start needs --sim-clock FILE (the daemon must share it)")
        return SimClock(accel), None
    start = None
    if sim_start is not None:
        try:
            start = datetime.fromisoformat(sim_start)
        except ValueError:
            raise ValidationError(f"--sim-start: not an ISO date-time: {sim_start!r}") from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=zone(app_context(ctx).settings.service.timezone))
    definition = ClockDefinition.starting(start, accel)
    try:
        write_definition(sim_clock, definition)
    except OSError as exc:
        raise ValidationError(f"--sim-clock {sim_clock}: cannot write: "
                              f"{exc.strerror or exc}") from None
    console.print(f"simulated clock in {sim_clock}: "
                  f"{definition.start.isoformat(timespec='seconds')} at {accel:g}x; run the "
                  f"daemon on it with `vpp serve --sim-clock {sim_clock}`", highlight=False,
                  soft_wrap=True)
    return FileClock(sim_clock), ClockControl(sim_clock)


async def _serve(gateways: list[SimGateway], seconds: float | None,
                 clock: ClockControl | None = None) -> None:
    started: list[SimGateway] = []
    try:
        for g in gateways:
            try:
                await g.start()
            except (OSError, RuntimeError) as exc:
                raise ValidationError(f"cannot listen on {g.host}:{g.port}: {exc}") from None
            started.append(g)
        console.print(f"serving {len(started)} gateway(s); Ctrl-C to stop; fault commands on "
                      "stdin (`status`, `fault PORT UNIT slow 2`, `clock skip 1h`, ...)",
                      highlight=False)
        by_port = {g.port: g for g in started}
        commands = asyncio.create_task(
            read_commands(by_port, lambda m: console.print(m, highlight=False), clock))
        try:
            if seconds is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(seconds)
        finally:
            commands.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await commands
    finally:
        for g in started:
            await g.stop()


def _run(gateways: list[SimGateway], seconds: float | None,
         clock: ClockControl | None = None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(gateways, seconds, clock))


@app.command("gateways")
def gateways(
    ctx: typer.Context,
    devices: int = typer.Option(..., "--devices", min=1, max=100_000, help="Number of devices."),
    base_port: int = typer.Option(15100, min=1024, max=65000, help="Port of the first gateway."),
    per_gateway: int = typer.Option(100, min=1, max=247, help="Unit ids per gateway."),
    accel: float = typer.Option(1.0, min=0.001, help="Time acceleration (60 = a minute a second)."),
    seconds: float | None = typer.Option(None, help="Stop after this many seconds (default: Ctrl-C)."),
    owner: str = typer.Option("Sim Owner", help="Owner name used in the printed enrol commands."),
    sim_clock: Path | None = typer.Option(None, "--sim-clock", metavar="FILE", help=SIM_CLOCK_HELP),
    sim_start: str | None = typer.Option(None, "--sim-start", help=SIM_START_HELP),
    watchdog_s: float | None = typer.Option(
        None, "--watchdog-s", min=5.0, max=3600.0,
        help="Set each device's watchdog timeout register (s) where its profile has one. An "
             "accelerated clock compresses it: at --accel 60 a PLC's 60 s is 1 s of real time, "
             "less than the heartbeats of hundreds of devices reliably need."),
) -> None:
    """Serve N simulated devices (one profile per gateway) and print how to enrol them."""
    clock, control = _clock(ctx, accel, sim_clock, sim_start)
    fleet = synthetic_fleet(devices, base_port=base_port, per_gateway=per_gateway, clock=clock,
                            watchdog_s=watchdog_s)
    if base_port + len(fleet) - 1 > 65535:
        raise ValidationError("port range exceeds 65535: lower --base-port")
    table = Table("endpoint", "profile", "kind", "unit ids", title="Simulated gateways")
    for g in fleet:
        units = f"1-{len(g.unit_ids)}" if len(g.unit_ids) > 1 else "1"
        table.add_row(f"127.0.0.1:{g.gateway.port}", g.kind.profile, g.kind.kind.value, units)
    console.print(table)
    console.print(LOOPBACK_HINT, highlight=False, soft_wrap=True)
    console.print("enrol with:", highlight=False)
    for g in fleet:
        k = g.kind
        params = " ".join(f"--param {key}={str(v).lower() if isinstance(v, bool) else v}"
                          for key, v in k.params.items())
        units = f"1-{len(g.unit_ids)}" if len(g.unit_ids) > 1 else "1"
        console.print(
            f"  vpp gateway add --owner '{owner}' --site sim-{g.gateway.port} "
            f"--host 127.0.0.1 --port {g.gateway.port} --unit-ids {units} --kind {k.kind.value} "
            f"--profile {k.profile} --rated-kw {k.rated_power_kw:g} --min-kw {k.min_setpoint_kw:g} "
            f"--max-kw {k.max_setpoint_kw:g} {params} --probe", highlight=False, soft_wrap=True)
    _run([g.gateway for g in fleet], seconds, control)


#: the simulated gateways are on 127.0.0.1, which the gateway host policy refuses by default
LOOPBACK_HINT = (
    "note: these gateways are on loopback (127.0.0.1), which enrolment refuses by default; "
    "set VPP_ENROLMENT__ALLOW_LOOPBACK=true in the environment of `vpp serve` and of the "
    "commands below (or `[enrolment] allow_loopback = true` in your --config file)")


@app.command("demo")
def demo(
    ctx: typer.Context,
    accel: float = typer.Option(1.0, min=0.001, help="Time acceleration."),
    seconds: float | None = typer.Option(None, help="Stop after this many seconds (default: Ctrl-C)."),
    sim_clock: Path | None = typer.Option(None, "--sim-clock", metavar="FILE", help=SIM_CLOCK_HELP),
    sim_start: str | None = typer.Option(None, "--sim-start", help=SIM_START_HELP),
) -> None:
    """Serve the gateways of the fleet file (default config/zhuzhou-demo.toml) on their ports,
    so that `vpp --config FILE gateway import-fleet --probe` can enrol them."""
    path = app_context(ctx).config_path or DEMO_CONFIG
    settings = load_settings(path)
    if not settings.owners:
        raise ValidationError(f"{path} declares no owners/gateways to simulate")
    clock, control = _clock(ctx, accel, sim_clock, sim_start)
    gws = demo_gateways(settings.owners, clock)
    table = Table("endpoint", "unit ids", "profiles", title=f"Simulated gateways of {path}")
    for g in gws:
        table.add_row(f"{g.host}:{g.port}", ",".join(map(str, sorted(g.devices))),
                      ", ".join(sorted({d.profile.name for d in g.devices.values()})))
    console.print(table)
    _run(gws, seconds, control)


@app.command("ocpp")
def ocpp_charge_points(
    ctx: typer.Context,
    charge_points: int = typer.Option(..., "--charge-points", min=1, max=100_000, help="Number of charge points."),
    url: str = typer.Option("ws://127.0.0.1:9000/ocpp", help="The central system's URL (without the identity)."),
    version: str = typer.Option("mixed", help="1.6, 2.0.1 or mixed (alternating)."),
    connectors: int = typer.Option(2, min=1, max=16, help="Connectors per charge point."),
    rated_kw: float = typer.Option(7.0, min=0.1, help="Rated power of each connector, kW."),
    meter_period_s: float = typer.Option(60.0, min=1.0, help="Simulated s between meter values."),
    accel: float = typer.Option(1.0, min=0.001, help="Time acceleration."),
    seconds: float | None = typer.Option(None, help="Stop after this many seconds (default: Ctrl-C)."),
    owner: str = typer.Option("Sim Owner", help="Owner name used in the printed commands."),
    sim_clock: Path | None = typer.Option(None, "--sim-clock", metavar="FILE", help=SIM_CLOCK_HELP),
    sim_start: str | None = typer.Option(None, "--sim-start", help=SIM_START_HELP),
) -> None:
    """Simulated OCPP charge points (1.6J / 2.0.1, the Modbus chargers' EV physics) that connect
    to the daemon's central system; prints how to register them (they retry until registered)."""
    from sim.ocpp_fleet import make_charge_points, run_all

    if version not in ("1.6", "2.0.1", "mixed"):
        raise ValidationError(f"--version must be 1.6, 2.0.1 or mixed, not {version!r}")
    clock, _ = _clock(ctx, accel, sim_clock, sim_start)
    rate = clock.rate if isinstance(clock, FileClock) else (lambda: accel)
    sims = make_charge_points(charge_points, version, connectors, rated_kw, clock,
                              meter_period_s, rate)
    console.print("register with:", highlight=False)
    units = f"1-{connectors}" if connectors > 1 else "1"
    for s in sims:
        console.print(f"  vpp gateway add-ocpp --owner '{owner}' --site sim-ocpp "
                      f"--identity {s.identity} --connectors {units} --rated-kw {rated_kw:g} "
                      f"--password {s.password}   # OCPP {s.version}", highlight=False,
                      soft_wrap=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_all(sims, url.rstrip("/"), seconds))
