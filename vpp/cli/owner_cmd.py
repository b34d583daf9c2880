"""``vpp owner`` and ``vpp token``: owners and API tokens."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlmodel import col, select

from vpp import fleet
from vpp.cli.common import app_context, console
from vpp.db import session_scope
from vpp.models import ApiToken, Owner, Role

app = typer.Typer(help="Device owners.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for operators and the grid.", no_args_is_help=True)


@app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Owner name (unique)."),
    contact: str = typer.Option("", help="Contact person, phone or e-mail."),
) -> None:
    """Add a device owner."""
    with session_scope(app_context(ctx).engine()) as s:
        owner = fleet.add_owner(s, name, contact)
    console.print(f"owner {owner.id}: {owner.name}", highlight=False)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List owners."""
    with session_scope(app_context(ctx).engine()) as s:
        owners = s.exec(select(Owner).order_by(col(Owner.id))).all()
    table = Table("id", "name", "contact", title="Owners")
    for o in owners:
        table.add_row(str(o.id), o.name, o.contact)
    console.print(table)


@app.command("token")
def owner_token(
    ctx: typer.Context,
    owner: str = typer.Argument(..., help="Owner name or id."),
    label: str = typer.Option("", help="What the token is for."),
) -> None:
    """Create an API token for an owner. The token is printed once and stored only hashed."""
    with session_scope(app_context(ctx).engine()) as s:
        o = fleet.get_owner(s, owner)
        row, clear = fleet.issue_token(s, Role.OWNER, o, label)
    console.print(f"token {row.id} for owner {o.name} (store it now, it is not kept):")
    print(clear)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    role: str = typer.Option(..., help="operator or grid (owner tokens: `vpp owner token`)."),
    label: str = typer.Option("", help="What the token is for."),
) -> None:
    """Create an operator or grid token. Printed once, stored only hashed."""
    with session_scope(app_context(ctx).engine()) as s:
        row, clear = fleet.issue_token(s, role, None, label)
    console.print(f"token {row.id} ({row.role}) (store it now, it is not kept):")
    print(clear)


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: int = typer.Argument(...)) -> None:
    """Revoke a token by id."""
    with session_scope(app_context(ctx).engine()) as s:
        row = fleet.revoke_token(s, token_id)
    console.print(f"token {row.id} revoked")


@token_app.command("list")
def token_list(ctx: typer.Context) -> None:
    """List tokens (never their values)."""
    with session_scope(app_context(ctx).engine()) as s:
        rows = s.exec(select(ApiToken).order_by(col(ApiToken.id))).all()
    table = Table("id", "role", "owner", "label", "created", "revoked", title="API tokens")
    for r in rows:
        table.add_row(
            str(r.id), r.role, str(r.owner_id or ""), r.label, r.created_at.isoformat(timespec="seconds"),
            r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else "",
        )
    console.print(table)
