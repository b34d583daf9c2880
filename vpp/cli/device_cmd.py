"""``vpp device``: list enrolled devices."""

from __future__ import annotations

import typer
from rich.table import Table

from vpp import fleet
from vpp.cli.common import app_context, console
from vpp.db import session_scope
from vpp.device_kinds import parse_kind
from vpp.errors import ValidationError

app = typer.Typer(help="Enrolled devices.", no_args_is_help=True)


def device_table(rows: list[fleet.DeviceRow], title: str = "Devices") -> Table:
    table = Table("id", "name", "kind", "owner", "gateway", "unit", "rated kW", "limits kW",
                  "profile", "status", title=title)
    for r in rows:
        d = r.device
        table.add_row(
            str(d.id), d.name, d.kind, r.owner, r.gateway, str(d.unit_id),
            f"{d.rated_power_kw:g}", f"[{d.min_setpoint_kw:g}, {d.max_setpoint_kw:g}]",
            d.profile, d.status,
        )
    return table


@app.command("list")
def list_(
    ctx: typer.Context,
    owner: str | None = typer.Option(None, help="Only this owner's devices (name or id)."),
    kind: str | None = typer.Option(None, help="Only devices of this kind."),
) -> None:
    """List devices with owner, gateway, limits and status."""
    if kind is not None:
        try:
            kind = parse_kind(kind).value
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
    with session_scope(app_context(ctx).engine()) as s:
        o = fleet.get_owner(s, owner) if owner else None
        rows = fleet.list_devices(s, o, kind)
    console.print(device_table(rows))
