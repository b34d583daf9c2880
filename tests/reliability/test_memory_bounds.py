"""Bounded memory under load: what the load benchmark's growth was made of, each with a test
that would have caught it (a size or an equality assertion, never a timing one).

* The forecast refresh re-read every raw reading of its window into Python every minute and
  built a days x devices grid (~290 MB allocated per refresh at 1,000 devices): now the
  database averages per interval (:func:`vpp.telemetry_store.interval_means`) and the site
  history is kept and extended (:class:`vpp.daemon.forecasts.SiteLoadHistory`). Tested: the
  same numbers as the raw-reading path (SQLite and PostgreSQL), a refresh reads only the new
  intervals, and the kept history never exceeds its window.
* Each gateway kept up to 100,000 request latencies: now a ring of
  :data:`device_adapters.modbus_client.LATENCY_WINDOW`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from bidding.workflow import owner_load, read_meter_frame
from device_adapters.modbus_client import LATENCY_WINDOW, GatewayStats
from vpp import fleet
from vpp.daemon.forecasts import REREAD_INTERVALS, SiteLoadHistory, site_means
from vpp.db import session_scope
from vpp.telemetry_store import Reading, interval_means, write_readings

T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
STEP = timedelta(minutes=15)


def _fleet(engine: Engine) -> dict[int, tuple[int, list[int]]]:
    """Two owners, three sites, five devices: site id -> (owner id, device ids)."""
    out: dict[int, tuple[int, list[int]]] = {}
    with session_scope(engine) as s:
        for k, (owner, n) in enumerate([("A", 2), ("A", 1), ("B", 2)]):
            o = fleet.add_owner(s, f"owner {owner} {k}")
            spec = {"host": "127.0.0.1", "port": 20100 + k, "devices": [
                {"name": f"load-{k}-{u}", "kind": "industrial_load", "unit_id": u,
                 "profile": "industrial-plc", "rated_power_kw": 20.0, "min_setpoint_kw": 0.0,
                 "max_setpoint_kw": 20.0, "params": {"max_curtail_kw": 10.0}}
                for u in range(1, n + 1)]}
            devs = fleet.add_gateway(s, o, f"site-{k}", spec).devices
            out[int(devs[0].site_id)] = (int(o.id or 0), [int(d.id or 0) for d in devs])
    return out


def _readings(device_ids: list[int], start: datetime, end: datetime, every_s: int,
              seed: int = 0, skip: set[tuple[int, int]] | None = None) -> list[Reading]:
    rng = np.random.default_rng(seed)
    out = []
    n = int((end - start).total_seconds() // every_s)
    for d in device_ids:
        for k in range(n):
            if skip and (d, k * every_s // 900) in skip:
                continue
            ts = start + timedelta(seconds=k * every_s + float(rng.uniform(0, every_s - 1)))
            p = None if rng.random() < 0.05 else float(rng.normal(10, 3))
            out.append(Reading(d, ts, p))
    return out


def test_interval_means_equal_the_raw_reading_average(engine: Engine) -> None:
    sites = _fleet(engine)
    ids = [d for _, devs in sites.values() for d in devs]
    # device ids[1] has no readings at all in interval 3 (a site gap)
    write_readings(engine, _readings(ids, T0, T0 + 8 * STEP, 37, skip={(ids[1], 3)}))
    start, end = T0 + STEP, T0 + 7 * STEP  # a window that cuts the data on both sides
    raw = read_meter_frame(engine, ids, start, end, 15)
    means = interval_means(engine, ids, start, end, 15)
    wide = means.pivot(index="interval_start", columns="device_id", values="power_kw")
    wide = wide.reindex(index=raw.index, columns=raw.columns)
    np.testing.assert_allclose(wide.to_numpy(), raw.to_numpy(), rtol=1e-12, equal_nan=True)
    assert np.isnan(wide.loc[T0 + 3 * STEP, ids[1]])
    grid = pd.date_range(start, end, freq="15min", inclusive="left")
    by_site = site_means(means, sites, grid)
    old = owner_load(raw, {s: devs for s, (_, devs) in sites.items()})
    np.testing.assert_allclose(by_site.to_numpy(), old[list(sites)].to_numpy(), rtol=1e-12,
                               equal_nan=True)
    assert by_site.isna().to_numpy().sum() == 1  # only the site of ids[1], interval 3


def test_site_history_reads_only_new_intervals_and_stays_within_its_window(
        sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    sites = _fleet(engine)
    ids = [d for _, devs in sites.values() for d in devs]
    window = timedelta(hours=6)  # the history kept: 24 intervals
    hist = SiteLoadHistory(15)
    write_readings(engine, _readings(ids, T0, T0 + 8 * STEP, 60, seed=1))
    end = T0 + 8 * STEP
    hist.update(engine, sites, end - window, end)
    assert hist.last_read == (end - window, end)  # the first refresh reads the whole window
    sizes = []
    for k in range(40):  # 10 hours of refreshes, one per closed interval
        write_readings(engine, _readings(ids, end, end + STEP, 60, seed=2 + k))
        # a late reading (buffered through an outage) for an interval read before
        write_readings(engine, [Reading(ids[0], end - 2 * STEP + timedelta(seconds=1), 500.0)])
        end += STEP
        frame = hist.update(engine, sites, end - window, end)
        assert hist.last_read == (end - (REREAD_INTERVALS + 1) * STEP, end)
        sizes.append(frame.shape)
        # exactly what reading the whole window afresh gives, late reading included
        fresh = SiteLoadHistory(15).update(engine, sites, end - window, end)
        pd.testing.assert_frame_equal(frame, fresh, check_freq=False)
        # nothing closed since: nothing read, same frame
        assert hist.update(engine, sites, end - window, end) is frame
        assert hist.last_read is None
    assert set(sizes) == {(24, len(sites))}  # bounded by the window, not by the readings


def test_gateway_latencies_are_a_bounded_ring() -> None:
    st = GatewayStats()
    for k in range(3 * LATENCY_WINDOW):
        st.record(k * 1e-6)
    assert st.requests == 3 * LATENCY_WINDOW
    assert len(st.latencies_s) == LATENCY_WINDOW
    assert st.latencies_s[-1] == (3 * LATENCY_WINDOW - 1) * 1e-6  # the most recent kept
