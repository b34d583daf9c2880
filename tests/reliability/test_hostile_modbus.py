"""Hostile Modbus: whatever a gateway sends back, decoding ends in a value or a clean
:class:`vpp.errors.DeviceError` (never another exception), and the decoded state is sane
(finite, power within 1.5x the rating, state of charge within 0-100 %). Then the real poller
against real pymodbus simulators with faults injected: the bad devices are quarantined with a
clear status and every other device keeps being polled and keeps taking setpoints."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import select

from device_adapters.codec import decode_points
from device_adapters.profile import load_profile
from device_adapters.registers import DataType, EncodingError, decode_raw
from sim.clock import ManualClock
from tests.reliability.transport import Fault, RecordingTransport
from tests.sim.helpers import BY_PROFILE, adapter_for, client_for, serve, sim_device
from vpp.errors import DeviceError

PROFILES = ["huawei-luna2000", "sungrow-sh", "alfen-ng9xx", "keba-p30", "coolmaster-vrf",
            "industrial-plc"]
WORD = st.one_of(st.integers(0, 0xFFFF), st.sampled_from([0, 0xFFFF, 0x7FFF, 0x8000, 0x7FC0,
                                                           0x7F80, 0xFF80]))
HOSTILE = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.none(),
                    st.text(max_size=3), st.booleans())


@given(words=st.lists(st.one_of(WORD, HOSTILE), max_size=6), dtype=st.sampled_from(DataType),
       wo=st.sampled_from(["big", "little"]), bo=st.sampled_from(["big", "little"]))
@settings(max_examples=400, deadline=None)
def test_decode_raw_only_raises_encoding_error(words: list, dtype: DataType, wo: str,
                                               bo: str) -> None:
    try:
        decode_raw(words, dtype, wo, bo)  # type: ignore[arg-type]
    except EncodingError:
        pass


@pytest.mark.parametrize("name", PROFILES)
@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_decode_points_of_real_profiles(name: str, data: st.DataObject) -> None:
    profile = load_profile(name)
    names = profile.poll_points()
    regs = {}
    for n in names:
        p = profile.points[n]
        for i in range(p.count):
            regs[(p.function, p.address + i)] = data.draw(st.one_of(WORD, HOSTILE))
        if p.scale_sf:
            sp = profile.points[p.scale_sf]
            regs[(sp.function, sp.address)] = data.draw(st.one_of(WORD, HOSTILE))
    try:
        # hostile on purpose: words that are not 16-bit ints (None, text, floats, huge ints)
        values = decode_points(profile, names, regs)  # type: ignore[arg-type]
    except EncodingError:
        return
    for v in values.values():
        assert isinstance(v, str) or math.isfinite(v)


@pytest.mark.parametrize("name", PROFILES)
@given(garbage=st.lists(WORD, min_size=1, max_size=8))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_adapter_reads_garbage_as_a_device_error_or_a_sane_state(name: str,
                                                                  garbage: list[int]) -> None:
    case = BY_PROFILE[name]

    async def go() -> None:
        t = RecordingTransport(sim_device(case, ManualClock(), 1), Fault(garbage=garbage))
        a = await adapter_for(case, t, 1)  # type: ignore[arg-type]
        try:
            s = await a.read_state()
        except DeviceError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
        assert math.isfinite(s.power_kw) and abs(s.power_kw) <= case.rated_kw * 1.5 + 0.5
        assert s.soc_pct is None or 0.0 <= s.soc_pct <= 100.0
        for v in (s.energy_kwh, s.indoor_temp_c, s.flex_down_kw, s.flex_up_kw):
            assert v is None or math.isfinite(v)
        res = await a.apply_setpoint(case.max_kw)  # context points are garbage too
        assert res.error is None or "\n" not in res.error

    asyncio.run(go())


async def test_poller_quarantines_bad_devices_and_keeps_the_rest(sqlite_engine: Engine,
                                                                 tmp_path: Path) -> None:
    """Two real simulated gateways; four of six devices misbehave in four different ways."""
    from vpp import fleet
    from vpp.config import PollingSettings
    from vpp.db import session_scope
    from vpp.enrolment import probe_gateway
    from vpp.models import Device
    from vpp.poller import Poller

    clock = ManualClock()
    huawei, keba = BY_PROFILE["huawei-luna2000"], BY_PROFILE["keba-p30"]
    devs_a = {1: sim_device(huawei, clock, 1), 2: sim_device(huawei, clock, 2)}
    devs_b = {1: sim_device(keba, clock, 1), 2: sim_device(keba, clock, 2),
              3: sim_device(keba, clock, 3), 4: sim_device(keba, clock, 4)}
    polling = PollingSettings(interval_s=0.1, timeout_s=0.3, retries=0, backoff_base_s=0.01,
                              offline_after_failures=2, offline_retry_s=0.0)  # retried each cycle

    def dev(c, unit: int) -> dict:  # noqa: ANN001
        return {"name": f"{c.profile}-{unit}", "kind": c.kind.value, "unit_id": unit,
                "profile": c.profile, "rated_power_kw": c.rated_kw,
                "min_setpoint_kw": c.min_kw, "max_setpoint_kw": c.max_kw, "params": c.params}

    async with serve(devs_a) as gw_a, serve(devs_b) as gw_b:
        with session_scope(sqlite_engine) as s:
            owner = fleet.add_owner(s, "o")
            ids = []
            for gw, c, units in ((gw_a, huawei, [1, 2]), (gw_b, keba, [1, 2, 3, 4])):
                e = fleet.add_gateway(s, owner, "site", {"host": "127.0.0.1", "port": gw.port,
                                                         "devices": [dev(c, u) for u in units]})
                ids.append(int(e.gateway.id or 0))
        for gid in ids:
            probe = await probe_gateway(sqlite_engine, gid, polling)
            assert probe.state == "active", probe
        poller = Poller(sqlite_engine, polling)
        assert await poller.load() == 6
        by_unit = {(a.client.port, a.unit_id): a for u in poller.gateways for a in u.adapters}
        bad = {by_unit[(gw_a.port, 1)].device_id: "garbage",
               by_unit[(gw_b.port, 1)].device_id: "exception",
               by_unit[(gw_b.port, 2)].device_id: "slow",
               by_unit[(gw_b.port, 3)].device_id: "silent"}
        good = [a for a in by_unit.values() if a.device_id not in bad]
        devs_a[1].faults.garbage = True
        devs_b[1].faults.exception_code = 4
        devs_b[2].faults.delay_s = 1.0
        devs_b[3].faults.silent = True
        for _ in range(4):
            report = await poller.poll_once()
            assert set(report.errors) == set(bad), report.errors
        for a in good:  # polled every cycle, and still take setpoints
            assert poller.stats[a.device_id].consecutive_failures == 0
            res = await a.apply_setpoint(a.max_setpoint_kw / 2)
            assert res.verified, res
        with session_scope(sqlite_engine) as s:
            rows = {d.id: d for d in s.exec(select(Device)).all()}
        for device_id, how in bad.items():
            assert rows[device_id].status == "offline", (how, rows[device_id])
            detail = rows[device_id].status_detail or ""
            assert detail and "\n" not in detail, (how, detail)
        assert "exception 4" in (rows[by_unit[(gw_b.port, 1)].device_id].status_detail or "")
        assert all(rows[a.device_id].status == "active" for a in good)
        # the faults clear: the devices come back on their own
        for d in (*devs_a.values(), *devs_b.values()):
            d.faults.clear()
        await asyncio.sleep(1.1)  # let late replies drain
        for _ in range(3):
            report = await poller.poll_once()
        assert report.failed == 0, report.errors
        with session_scope(sqlite_engine) as s:
            assert {d.status for d in s.exec(select(Device)).all()} == {"active"}
        await poller.close()


@pytest.mark.parametrize("words", [["x"], [None], [1.5], [-1], [0x10000], [2**70]])
def test_non_words_are_an_encoding_error(words: list) -> None:
    """Found by the fuzz above: a non-integer 'register' raised TypeError, not EncodingError."""
    with pytest.raises(EncodingError, match="not a 16-bit word"):
        decode_raw(words, DataType.INT16)


async def test_an_offline_device_is_retried_only_every_offline_retry_s() -> None:
    """A silent device costs its gateway ``timeout_s x (retries + 1)`` each time it is polled
    (found by the full-stack run: one silent device held up the whole cycle). Once offline it
    is tried again only every ``polling.offline_retry_s``: the other device on the same
    connection is polled every cycle, the silent one is skipped (and counted), and it comes
    back when it answers again."""
    from vpp.config import PollingSettings
    from vpp.poller import Poller

    clock = ManualClock()
    keba = BY_PROFILE["keba-p30"]
    devs = {1: sim_device(keba, clock, 1), 2: sim_device(keba, clock, 2)}
    async with serve(devs) as gw:
        client = client_for(gw)
        good = await adapter_for(keba, client, 1, 1)
        silent = await adapter_for(keba, client, 2, 2)
        poller = Poller(None, PollingSettings(timeout_s=0.2, retries=0, backoff_base_s=0.01,
                                              offline_after_failures=2, offline_retry_s=3600))
        poller.add_gateway(1, client, [good, silent])
        devs[2].faults.silent = True
        reports = [await poller.poll_once() for _ in range(6)]
        assert [r.failed for r in reports] == [1, 1, 0, 0, 0, 0]
        assert [r.skipped for r in reports] == [0, 0, 1, 1, 1, 1]
        assert all(r.ok == 1 for r in reports)
        st_good, st_silent = poller.stats[1], poller.stats[2]
        assert st_good.polls == 6 and st_good.errors == 0
        assert st_silent.polls == 2 and st_silent.skipped == 4 and not st_silent.online
        devs[2].faults.clear()
        report = await poller.poll_once()  # not due yet: still skipped, however long it takes
        assert report.skipped == 1 and st_silent.polls == 2
        st_silent.retry_at = 0.0  # the hour has passed (no test waits an hour)
        report = await poller.poll_once()
        assert report.failed == 0 and report.skipped == 0 and report.ok == 2
        assert st_silent.online and st_silent.polls == 3
        await poller.close()
