"""``vpp device``: list, edit, retire and remove enrolled devices."""

from __future__ import annotations

import typer
from rich.table import Table

from vpp import fleet, fleet_edit
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


@app.command("edit")
def edit(
    ctx: typer.Context,
    device_id: int = typer.Argument(..., help="Device id."),
    name: str | None = typer.Option(None, help="New name."),
    kind: str | None = typer.Option(None, help="New kind (the device is probed again)."),
    unit_id: int | None = typer.Option(None, min=0, max=255,
                                       help="New Modbus unit id (probed again)."),
    profile: str | None = typer.Option(None, help="New profile (probed again)."),
    rated_kw: float | None = typer.Option(None, help="Rated power, kW."),
    min_kw: float | None = typer.Option(None, help="Lowest safe setpoint, kW."),
    max_kw: float | None = typer.Option(None, help="Highest safe setpoint, kW."),
    param: list[str] = typer.Option([], "--param",
                                    help="Kind parameter KEY=VALUE (repeatable; merged)."),
) -> None:
    """Change a device; validated like enrolment. Limits take effect in a running daemon
    within one poll cycle; a new kind, unit id or profile needs `vpp gateway probe`."""
    from vpp.cli.gateway_cmd import parse_params

    with session_scope(app_context(ctx).engine()) as s:
        d = fleet_edit.get_device(s, device_id)
        params = {**(d.params or {}), **parse_params(param)} if param else None
        changes = fleet_edit.edit_device(s, d, fleet_edit.DeviceEdit(
            name=name, kind=kind, unit_id=unit_id, profile=profile, rated_power_kw=rated_kw,
            min_setpoint_kw=min_kw, max_setpoint_kw=max_kw, params=params), "cli")
        status, gateway_id = d.status, d.gateway_id
    if not changes:
        console.print(f"device {device_id}: nothing changed", highlight=False)
        return
    for k, (old, new) in changes.items():
        console.print(f"device {device_id} {k}: {old!r} -> {new!r}", highlight=False)
    if status == "pending":
        console.print(f"device {device_id} is pending: `vpp gateway probe {gateway_id}` to "
                      "enrol it with its new settings", highlight=False)


@app.command("retire")
def retire(ctx: typer.Context, device_id: int = typer.Argument(..., help="Device id.")) -> None:
    """Take a device out of service; its history is kept."""
    with session_scope(app_context(ctx).engine()) as s:
        fleet_edit.retire_device(s, fleet_edit.get_device(s, device_id), "cli")
    console.print(f"device {device_id} retired; a running daemon stops polling it within one "
                  "poll cycle", highlight=False)


@app.command("remove")
def remove(ctx: typer.Context, device_id: int = typer.Argument(..., help="Device id.")) -> None:
    """Delete a device; refused if it has history (retire it instead)."""
    with session_scope(app_context(ctx).engine()) as s:
        fleet_edit.remove_device(s, fleet_edit.get_device(s, device_id), "cli")
    console.print(f"device {device_id} removed", highlight=False)
