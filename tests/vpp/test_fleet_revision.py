"""The fleet revision (migration 0003): every committed fleet change moves it, in any process;
the poller's own online/offline bookkeeping does not; migration 0003 up and down."""

from __future__ import annotations

from sqlalchemy import Engine, inspect
from sqlmodel import Session

from vpp import fleet, fleet_edit
from vpp.db import current_revision, session_scope, upgrade
from vpp.models import Device, fleet_revision

SPEC = {"host": "10.0.0.5", "port": 502, "devices": [
    {"name": "b", "kind": "battery", "unit_id": u, "profile": "huawei-luna2000",
     "rated_power_kw": 5.0, "min_setpoint_kw": -5.0, "max_setpoint_kw": 5.0,
     "params": {"capacity_kwh": 15.0}} for u in (1, 2)]}


def rev(engine: Engine) -> int:
    with Session(engine) as s:
        return fleet_revision(s)


def test_fleet_changes_move_the_revision_bookkeeping_does_not(engine: Engine) -> None:
    r0 = rev(engine)
    with session_scope(engine) as s:
        o = fleet.add_owner(s, "o")  # not a fleet change
    assert rev(engine) == r0
    with session_scope(engine) as s:
        ids = [int(d.id or 0) for d in fleet.add_gateway(s, o, "s", SPEC).devices]
    r1 = rev(engine)
    assert r1 > r0
    with session_scope(engine) as s:  # a probe activates the devices: a change
        for i in ids:
            s.get(Device, i).status = "active"  # type: ignore[union-attr]
    r2 = rev(engine)
    assert r2 > r1
    with session_scope(engine) as s:  # the poller: active <-> offline is not
        d = s.get(Device, ids[0])
        assert d is not None
        d.status, d.status_detail = "offline", "timeout"
    with session_scope(engine) as s:
        s.get(Device, ids[0]).status = "active"  # type: ignore[union-attr]
    with session_scope(engine) as s:  # nor the owner's preferences (planning reads them)
        s.get(Device, ids[0]).preferences = {"participate": False}  # type: ignore[union-attr]
    assert rev(engine) == r2
    with session_scope(engine) as s:
        fleet_edit.edit_device(s, fleet_edit.get_device(s, ids[0]),
                               fleet_edit.DeviceEdit(max_setpoint_kw=4.0), "t")
    r3 = rev(engine)
    assert r3 > r2
    with session_scope(engine) as s:
        fleet_edit.remove_device(s, fleet_edit.get_device(s, ids[1]), "t")
    assert rev(engine) > r3
    failed = rev(engine)
    try:  # a rolled-back change does not move it
        with session_scope(engine) as s:
            fleet_edit.retire_device(s, fleet_edit.get_device(s, ids[0]), "t")
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert rev(engine) == failed


def test_migration_0003_up_and_down(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0002")
    assert "fleet_revision" not in inspect(empty_engine).get_table_names()
    upgrade(empty_engine, "0003")
    tables = set(inspect(empty_engine).get_table_names())
    assert {"fleet_revision", "device_profile"} <= tables
    assert rev(empty_engine) == 0
    from alembic import command

    from vpp.db import _alembic_config

    command.downgrade(_alembic_config(empty_engine), "0002")
    assert current_revision(empty_engine) == "0002"
    assert not {"fleet_revision", "device_profile"} & set(
        inspect(empty_engine).get_table_names())
    upgrade(empty_engine)
