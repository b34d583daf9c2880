"""Fault injection on command: one text line per command (typed into `vpp sim ...`'s stdin).

    fault PORT UNIT exception CODE   every request to the unit gets Modbus exception CODE
    fault PORT UNIT slow SECONDS     replies SECONDS late
    fault PORT UNIT stuck|garbage|silent|swap|ignore-writes
    clear PORT UNIT                  remove the unit's faults
    drop PORT                        close the gateway's open connections
    silent PORT on|off               gateway accepts connections and never answers
    status                           one line per unit: profile, setpoint, power, faults
    clock                            the shared simulated time and speed (with --sim-clock)
    clock speed X                    run X simulated seconds per real second from now on
    clock skip DURATION              jump ahead (23h, 90m, 1h30m, 45s); never backwards
    clock skip-to ISO-TIME           jump ahead to a time (2026-07-15T13:50+08:00)
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from dataclasses import asdict

from sim.clock import ClockControl
from sim.server import SimGateway
from vpp.errors import ValidationError

FLAGS = {"stuck": "stuck", "garbage": "garbage", "silent": "silent", "swap": "word_swap",
         "ignore-writes": "ignore_writes"}


class CommandError(ValueError):
    pass


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise CommandError(f"{what} must be an integer, got {value!r}") from None


def apply_command(gateways: dict[int, SimGateway], line: str,
                  clock: ClockControl | None = None) -> str:
    """Apply one command; returns what happened, raises :class:`CommandError` if malformed.
    ``clock``: the shared clock file's control (``clock ...`` commands), when there is one."""
    words = line.split()
    if not words:
        return ""
    cmd, args = words[0].lower(), words[1:]
    if cmd == "clock":
        if clock is None:
            raise CommandError("no shared clock: start the simulator with --sim-clock FILE")
        try:
            return clock.command(args)
        except ValidationError as exc:
            raise CommandError(exc.message) from None
    if cmd == "status":
        out = []
        for port, g in sorted(gateways.items()):
            for unit, d in sorted(g.devices.items()):
                faults = [k for k, v in asdict(d.faults).items() if v not in (None, 0.0, False)]
                out.append(f"{port} unit {unit} {d.profile.name}: setpoint {d.setpoint_kw} kW, "
                           f"power {d.physics.power_kw:.2f} kW, faults {faults or 'none'}")
        return "\n".join(out)
    if not args:
        raise CommandError(f"{cmd}: missing PORT")
    port = _int(args[0], "PORT")
    if port not in gateways:
        raise CommandError(f"no simulated gateway on port {port}")
    g = gateways[port]
    if cmd == "drop":
        return f"dropped {g.drop_connections()} connection(s) on {port}"
    if cmd == "silent":
        if len(args) != 2 or args[1] not in ("on", "off"):
            raise CommandError("usage: silent PORT on|off")
        g.silent = args[1] == "on"
        return f"gateway {port} silent: {g.silent}"
    if cmd not in ("fault", "clear"):
        raise CommandError(f"unknown command {cmd!r} (fault, clear, drop, silent, status, clock)")
    if len(args) < 2:
        raise CommandError(f"usage: {cmd} PORT UNIT ...")
    unit = _int(args[1], "UNIT")
    dev = g.devices.get(unit)
    if dev is None:
        raise CommandError(f"no unit {unit} on gateway {port}")
    if cmd == "clear":
        dev.faults.clear()
        return f"{port} unit {unit}: faults cleared"
    if len(args) < 3:
        raise CommandError("usage: fault PORT UNIT KIND [VALUE]")
    kind = args[2]
    if kind == "exception":
        code = _int(args[3] if len(args) > 3 else "", "CODE")
        if not 1 <= code <= 11:
            raise CommandError("exception CODE must be 1..11")
        dev.faults.exception_code = code
    elif kind == "slow":
        try:
            dev.faults.delay_s = float(args[3])
        except (IndexError, ValueError):
            raise CommandError("usage: fault PORT UNIT slow SECONDS") from None
    elif kind in FLAGS:
        setattr(dev.faults, FLAGS[kind], True)
    else:
        raise CommandError(f"unknown fault {kind!r} (exception, slow, {', '.join(FLAGS)})")
    return f"{port} unit {unit}: {' '.join(args[2:])}"


async def read_commands(gateways: dict[int, SimGateway], write=print,
                        clock: ClockControl | None = None) -> None:
    """Apply commands from stdin until EOF (no-op when stdin is not readable)."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (ValueError, OSError, AttributeError):  # no real stdin (tests, daemons)
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or sys.stdin.isatty()):
        return  # a regular file or /dev/null: nothing to follow (epoll refuses them)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):
        return
    while line := await reader.readline():
        try:
            msg = apply_command(gateways, line.decode(errors="replace"), clock)
        except CommandError as exc:
            msg = f"error: {exc}"
        if msg:
            write(msg)
