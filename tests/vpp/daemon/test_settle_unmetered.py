"""The settle loop with a device missing meter data (a fleet without weeks of history, so the
baselines fixed at the first plan are used): the device's interval counts as no response, the
rest of the fleet is settled, and the settlement says which device-intervals were not metered.
(Before: an owner was "metered" in an interval as soon as one of its devices was, so a silent
device's baseline was counted as delivered.)"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, delete
from sqlmodel import select

from tests.vpp.daemon.harness import daemon_settings, seed
from tests.vpp.daemon.test_settle import _event
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.settle import Settler
from vpp.db import session_scope
from vpp.models import GridEvent, Settlement, TelemetryReading, table_of

TEL = table_of(TelemetryReading)


async def test_a_device_without_readings_counts_as_no_response(engine: Engine,
                                                               tmp_path: Path) -> None:
    tokens = seed(engine)
    event_id = _event(engine, tokens.owner_id, True, "ev-gap")
    with session_scope(engine) as s:
        ev = s.get(GridEvent, event_id)
        assert ev is not None
        start = ev.start
        silent = min(int(k) for k in ev.detail["baseline_kw"])
    with engine.begin() as conn:  # the device went silent for the second interval
        conn.execute(delete(TEL).where(TEL.c.device_id == silent,
                                       TEL.c.ts >= start + timedelta(minutes=15),
                                       TEL.c.ts < start + timedelta(minutes=30)))
    infra = Infra.create(daemon_settings(tmp_path, str(engine.url)), Db(engine))
    try:
        await Settler(infra).step()
    finally:
        infra.db.close()
    with session_scope(engine) as s:
        st = s.exec(select(Settlement)).one()
        # two devices, baseline 10 kW, metered 4 kW: 6 kW each for 4 intervals, less the
        # silent device's second interval (no response): 7 x 6 kW x 0.25 h
        assert st.response_kwh == 10.5
        assert st.baseline_kwh == 20.0 and st.metered_kwh == 9.5
        assert st.detail["unmetered"] == {"rule": "no_response",
                                          "device_event_intervals": {str(silent): 1}}
        done = s.get(GridEvent, event_id)
        assert done is not None and done.status == "settled"
