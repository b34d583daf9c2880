"""``vpp gateway``: register Modbus TCP gateways and the devices behind them."""

from __future__ import annotations

import json

import typer
from rich.table import Table
from sqlmodel import col, select

from vpp import fleet, fleet_edit
from vpp.cli.common import app_context, console, parse_int_list
from vpp.db import session_scope
from vpp.errors import DeviceError, ValidationError
from vpp.gateway_hosts import HostPolicy
from vpp.models import Device, EnrolmentState, Gateway

app = typer.Typer(help="Modbus TCP gateways.", no_args_is_help=True)


def parse_params(items: list[str]) -> dict[str, object]:
    """``["capacity_kwh=200", "v2g=true"]`` -> dict, values parsed as JSON where they can be."""
    out: dict[str, object] = {}
    for item in items:
        if "=" not in item:
            raise ValidationError(f"--param must be KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


@app.command("add")
def add(
    ctx: typer.Context,
    owner: str = typer.Option(..., help="Owner name or id."),
    site: str = typer.Option(..., help="Site name (created if new)."),
    host: str = typer.Option(..., help="Gateway host or IP."),
    port: int = typer.Option(502, min=1, max=65535, help="Modbus TCP port."),
    unit_ids: str = typer.Option(..., help="Unit ids behind the gateway, e.g. 1,2,5-7."),
    kind: str = typer.Option(
        ..., help="commercial_building | industrial_load | ev_charger | battery | v2g_charger"
             " | pv_inverter"),
    profile: str = typer.Option(..., help="Device profile name (config/device_profiles/NAME.toml)."),
    rated_kw: float = typer.Option(..., help="Rated power of each device, kW."),
    min_kw: float | None = typer.Option(None, help="Lowest safe setpoint, kW (default 0, or -rated for batteries)."),
    max_kw: float | None = typer.Option(None, help="Highest safe setpoint, kW (default rated)."),
    param: list[str] = typer.Option([], "--param", help="Kind parameter KEY=VALUE (repeatable)."),
    region: str = typer.Option("", help="Region or feeder of the site."),
    probe: bool = typer.Option(False, "--probe", help="Probe the gateway right away (enrol)."),
) -> None:
    """Register a gateway with one device per unit id (state: registered, devices pending)."""
    units = parse_int_list(unit_ids, "--unit-ids")
    if len(set(units)) != len(units):
        dup = sorted({u for u in units if units.count(u) > 1})
        raise ValidationError(f"duplicate unit id {dup[0]} on gateway {host}:{port}")
    params = parse_params(param)
    lo = min_kw if min_kw is not None else (-rated_kw if kind == "battery" else 0.0)
    hi = max_kw if max_kw is not None else rated_kw
    spec = {
        "host": host, "port": port,
        "devices": [
            {"name": f"{site}/{kind}/u{u}", "kind": kind, "unit_id": u, "profile": profile,
             "rated_power_kw": rated_kw, "min_setpoint_kw": lo, "max_setpoint_kw": hi,
             "params": params}
            for u in units
        ],
    }
    actx = app_context(ctx)
    with session_scope(actx.engine()) as s:
        o = fleet.get_owner(s, owner)
        enrolled = fleet.add_gateway(s, o, site, spec, region, hosts=host_policy(ctx))
    gateway_id = enrolled.gateway.id or 0
    console.print(
        f"gateway {gateway_id} {host}:{port} registered with "
        f"{len(enrolled.devices)} device(s) (state: {enrolled.gateway.enrolment_state})",
        highlight=False,
    )
    if not probe:
        return
    try:
        _probe(ctx, gateway_id)
    except DeviceError as exc:
        # nothing answered as declared: take the registration back, so that the corrected
        # command simply runs again (the rows have no history: nothing was ever polled)
        with session_scope(actx.engine()) as s:
            gw = s.get(Gateway, gateway_id)
            removed = gw is not None and gw.enrolment_state == EnrolmentState.FAILED.value
            if gw is not None and removed:
                fleet_edit.remove_gateway(s, gw, "cli")
        if removed:
            raise DeviceError(f"{exc.message}; nothing was registered: correct the command "
                              "and run it again") from None
        raise


def host_policy(ctx: typer.Context) -> HostPolicy:
    """The configured gateway host policy (``[enrolment]``)."""
    return HostPolicy.from_settings(app_context(ctx).settings.enrolment)


def _probe(ctx: typer.Context, gateway_id: int) -> None:
    from vpp.enrolment import probe_gateway_sync

    actx = app_context(ctx)
    report = probe_gateway_sync(actx.engine(), gateway_id, actx.settings.polling,
                                hosts=host_policy(ctx))
    table = Table("device", "name", "unit", "result", "power kW", title=f"Probe of {report.endpoint}")
    for d in report.devices:
        table.add_row(str(d.device_id), d.name, str(d.unit_id), "active" if d.ok else d.reason or "",
                      "" if d.power_kw is None else f"{d.power_kw:.2f}")
    console.print(table)
    console.print(f"gateway {report.gateway_id}: {report.state}", highlight=False)
    if report.state != "active":
        raise DeviceError(f"gateway {report.endpoint} not enrolled: {report.error}")


@app.command("probe")
def probe_cmd(
    ctx: typer.Context,
    gateway_id: int | None = typer.Argument(None, help="Gateway id."),
    all_: bool = typer.Option(False, "--all", help="Probe every registered gateway."),
) -> None:
    """Probe a registered gateway: connect, identify, check plausibility, mark devices."""
    if (gateway_id is None) == (not all_):
        raise ValidationError("give a gateway id or --all (not both)")
    if gateway_id is not None:
        _probe(ctx, gateway_id)
        return
    with session_scope(app_context(ctx).engine()) as s:
        ids = [g.id for g in s.exec(select(Gateway).order_by(col(Gateway.id))).all()]
    failed = []
    for gid in ids:
        try:
            _probe(ctx, gid or 0)
        except DeviceError as exc:
            failed.append(str(exc))
    if failed:
        raise DeviceError(f"{len(failed)} of {len(ids)} gateway(s) not enrolled: {failed[0]}")


@app.command("import-fleet")
def import_fleet(
    ctx: typer.Context,
    probe: bool = typer.Option(False, "--probe", help="Probe every gateway afterwards."),
) -> None:
    """Register the owners, sites, gateways and devices of the --config file (idempotent)."""
    actx = app_context(ctx)
    with session_scope(actx.engine()) as s:
        added = fleet.load_fleet(s, actx.settings.owners, hosts=host_policy(ctx))
    console.print(f"{added} device(s) registered", highlight=False)
    if probe:
        probe_cmd(ctx, None, True)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List gateways with their enrolment state."""
    with session_scope(app_context(ctx).engine()) as s:
        gws = s.exec(select(Gateway).order_by(col(Gateway.id))).all()
        counts = {g.id: len(s.exec(select(Device.id).where(Device.gateway_id == g.id)).all()) for g in gws}
    table = Table("id", "endpoint", "owner", "devices", "state", "last error", title="Gateways")
    for g in gws:
        table.add_row(str(g.id), f"{g.host}:{g.port}", str(g.owner_id), str(counts[g.id]),
                      g.enrolment_state, g.last_error or "")
    console.print(table)


@app.command("edit")
def edit(
    ctx: typer.Context,
    gateway_id: int = typer.Argument(..., help="Gateway id."),
    host: str | None = typer.Option(None, help="New host or IP."),
    port: int | None = typer.Option(None, min=1, max=65535, help="New Modbus TCP port."),
    probe: bool = typer.Option(False, "--probe", help="Probe it at its new place right away."),
) -> None:
    """Move a gateway to a new host and/or port (it is probed again before it is polled)."""
    if host is None and port is None:
        raise ValidationError("nothing to change: give --host and/or --port")
    with session_scope(app_context(ctx).engine()) as s:
        gw = fleet_edit.get_gateway(s, gateway_id)
        changes = fleet_edit.edit_gateway(s, gw, fleet_edit.GatewayEdit(host, port), "cli",
                                          host_policy(ctx))
        state = gw.enrolment_state
    if not changes:
        console.print(f"gateway {gateway_id}: nothing changed", highlight=False)
        return
    console.print(f"gateway {gateway_id} now at {changes['host'][1]}:{changes['port'][1]} "
                  f"(state: {state}; `vpp gateway probe {gateway_id}` to enrol it there)",
                  highlight=False)
    if probe:
        _probe(ctx, gateway_id)


@app.command("retire")
def retire(ctx: typer.Context,
           gateway_id: int = typer.Argument(..., help="Gateway id.")) -> None:
    """Take a gateway and its devices out of service; history is kept (probe to return)."""
    with session_scope(app_context(ctx).engine()) as s:
        n = fleet_edit.retire_gateway(s, fleet_edit.get_gateway(s, gateway_id), "cli")
    console.print(f"gateway {gateway_id} retired with {n} device(s); a running daemon stops "
                  "polling them within one poll cycle", highlight=False)


@app.command("remove")
def remove(ctx: typer.Context,
           gateway_id: int = typer.Argument(..., help="Gateway id.")) -> None:
    """Delete a gateway and its devices; refused if they have history (retire it instead)."""
    with session_scope(app_context(ctx).engine()) as s:
        fleet_edit.remove_gateway(s, fleet_edit.get_gateway(s, gateway_id), "cli")
    console.print(f"gateway {gateway_id} removed", highlight=False)


@app.command("add-ocpp")
def add_ocpp(
    ctx: typer.Context,
    owner: str = typer.Option(..., help="Owner name or id."),
    site: str = typer.Option(..., help="Site name (created if new)."),
    identity: str = typer.Option(..., help="The charge point's OCPP identity (its URL's last segment)."),
    connectors: str = typer.Option("1", help="Connector (1.6J) or EVSE (2.0.1) ids, e.g. 1-2."),
    rated_kw: float = typer.Option(..., help="Rated power of each connector, kW."),
    max_kw: float | None = typer.Option(None, help="Highest safe limit, kW (default rated)."),
    password: str | None = typer.Option(None, help="HTTP Basic password, 16-40 characters (default: generated, shown once)."),
    region: str = typer.Option("", help="Region or feeder of the site."),
) -> None:
    """Register an OCPP 1.6J / 2.0.1 charge point, one ev_charger device per connector; it
    enrols itself when it connects to the daemon's central system ([ocpp]) and boots."""
    from vpp.ocpp_gateways import add_ocpp_gateway, connector_devices, new_password

    ids = parse_int_list(connectors, "--connectors")
    secret = password if password is not None else new_password()
    spec = {"identity": identity, "password": secret,
            "devices": connector_devices(site, identity, ids, rated_kw, max_kw)}
    actx = app_context(ctx)
    with session_scope(actx.engine()) as s:
        enrolled = add_ocpp_gateway(s, fleet.get_owner(s, owner), site, spec, region,
                                    generated=password is None)
    o = actx.settings.ocpp
    console.print(f"charge point {identity} registered as gateway {enrolled.gateway.id} with "
                  f"{len(enrolled.devices)} connector(s) (state: registered until it boots)",
                  highlight=False)
    if password is None:
        console.print(f"password (shown once): {secret}", highlight=False)
    console.print(f"it connects to ws://{o.host}:{o.port}{o.path_prefix}/{identity} "
                  f"(HTTP Basic user {identity}){'' if o.enabled else ' once the daemon runs with [ocpp] enabled = true'}",
                  highlight=False, soft_wrap=True)
