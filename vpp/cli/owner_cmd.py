"""``vpp owner`` and ``vpp token``: owners and API tokens.

Every token expires (``[api] token_ttl_days`` per role); ``vpp token rotate`` issues a
replacement and lets the old one work for a grace period (``[api] token_rotation_grace_hours``).
Times are shown in UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import typer
from rich.table import Table
from sqlmodel import col, select

from vpp import fleet, tokens
from vpp.cli.common import app_context, console
from vpp.db import session_scope
from vpp.models import ApiToken, Owner, Role, utcnow

app = typer.Typer(help="Device owners.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: create, list, rotate, revoke.", no_args_is_help=True)


def _utc(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


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
    actx = app_context(ctx)
    with session_scope(actx.engine()) as s:
        o = fleet.get_owner(s, owner)
        row, clear = tokens.issue_token(s, Role.OWNER, o, label, api=actx.settings.api)
    console.print(f"token {row.id} for owner {o.name}, expires {_utc(row.expires_at)} "
                  "(store it now, it is not kept):", highlight=False)
    print(clear)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    role: str = typer.Option(..., help="operator or grid (owner tokens: `vpp owner token`)."),
    label: str = typer.Option("", help="What the token is for."),
) -> None:
    """Create an operator or grid token. Printed once, stored only hashed."""
    actx = app_context(ctx)
    with session_scope(actx.engine()) as s:
        row, clear = tokens.issue_token(s, role, None, label, api=actx.settings.api)
    console.print(f"token {row.id} ({row.role}), expires {_utc(row.expires_at)} "
                  "(store it now, it is not kept):", highlight=False)
    print(clear)


@token_app.command("rotate")
def token_rotate(
    ctx: typer.Context,
    token_id: int = typer.Argument(..., help="The token to replace."),
    grace_hours: float | None = typer.Option(
        None, min=0, help="How long the old token keeps working (default: "
        "[api] token_rotation_grace_hours; 0: stops at once)."),
) -> None:
    """Issue a new token in place of TOKEN_ID (same role, owner, label); the old one expires
    after the grace period. The new token is printed once, stored only hashed."""
    actx = app_context(ctx)
    grace = None if grace_hours is None else timedelta(hours=grace_hours)
    with session_scope(actx.engine()) as s:
        r = tokens.rotate_token(s, token_id, api=actx.settings.api, grace=grace)
    console.print(f"token {r.new.id} ({r.new.role}) replaces token {r.old.id}, expires "
                  f"{_utc(r.new.expires_at)}; token {r.old.id} stops working at "
                  f"{_utc(r.old.expires_at)} (store the new token now, it is not kept):",
                  highlight=False)
    print(r.clear)


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: int = typer.Argument(...)) -> None:
    """Revoke a token by id."""
    with session_scope(app_context(ctx).engine()) as s:
        row = tokens.revoke_token(s, token_id)
    console.print(f"token {row.id} revoked")


@token_app.command("list")
def token_list(ctx: typer.Context) -> None:
    """List tokens (never their values) with their expiry and state."""
    with session_scope(app_context(ctx).engine()) as s:
        rows = s.exec(select(ApiToken).order_by(col(ApiToken.id))).all()
    now = utcnow()
    table = Table("id", "role", "owner", "label", "created", "expires", "state", title="API tokens")
    for r in rows:
        state = tokens.token_state(r, now)
        shown = state.value
        if state is tokens.TokenState.ROTATED:
            shown = f"rotated -> {r.replaced_by_id}"
        elif state is tokens.TokenState.REVOKED and r.revoked_at is not None:
            shown = f"revoked {_utc(r.revoked_at)}"
        table.add_row(str(r.id), r.role, str(r.owner_id or ""), r.label, _utc(r.created_at),
                      _utc(r.expires_at), shown)
    console.print(table)
