"""``vpp poll``: read every active device (once, or every cycle) and show the readings."""

from __future__ import annotations

import asyncio

import typer
from rich.table import Table

from vpp.cli.common import app_context, console
from vpp.gateway_hosts import HostPolicy
from vpp.poller import Poller


def _table(poller: Poller) -> Table:
    t = Table("device", "name", "power kW", "energy kWh", "SoC %", "indoor C", "flex down kW",
              "latency ms", "status", title="Poll")
    for dev_id, st in sorted(poller.stats.items()):
        s = st.last_state
        fmt = (lambda v: "" if v is None else f"{v:.1f}")  # noqa: E731
        t.add_row(str(dev_id), st.name, fmt(s.power_kw if s else None),
                  fmt(s.energy_kwh if s else None), fmt(s.soc_pct if s else None),
                  fmt(s.indoor_temp_c if s else None), fmt(s.flex_down_kw if s else None),
                  fmt(st.last_latency_ms), "ok" if st.last_error is None else st.last_error)
    return t


def poll(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="One cycle, then print the table."),
    cycles: int | None = typer.Option(None, min=1, help="Stop after this many cycles."),
) -> None:
    """Poll the enrolled, active devices and store telemetry."""
    actx = app_context(ctx)
    engine = actx.engine()

    async def main() -> Poller:
        poller = Poller(engine, actx.settings.polling)
        n = await poller.load(HostPolicy.from_settings(actx.settings.enrolment))
        console.print(f"polling {n} device(s) on {len(poller.gateways)} gateway(s)",
                      highlight=False)
        try:
            if once:
                report = await poller.poll_once()
                console.print(f"cycle {report.seconds * 1000:.0f} ms, {report.requests} "
                              f"requests, {report.failed} failed", highlight=False)
            else:
                await poller.run(asyncio.Event(), cycles=cycles)
        finally:
            await poller.close(release=True)
        return poller

    try:
        poller = asyncio.run(main())
    except KeyboardInterrupt:
        console.print("stopped")
        return
    console.print(_table(poller))
    for dev_id, err in poller.load_errors.items():
        console.print(f"device {dev_id} not polled: {err}", highlight=False)
