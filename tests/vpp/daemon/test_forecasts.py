"""The daemon's forecast refresh (the ``baselines`` loop): per-site forecasts from stored
telemetry when there is enough history, an explicit ``insufficient_history`` status (and no
numbers) when there is not, the state in /metrics, and the owner quantiles bidding uses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, update

from bidding.synthetic import make_fleet, simulate_history
from tests.vpp.daemon.harness import daemon_settings
from vpp.models import Device
from vpp.server import Daemon

NOW = datetime(2026, 7, 15, 3, 7, tzinfo=UTC)  # 11:07 in Zhuzhou


def _daemon(tmp_path: Path, engine: Engine) -> Daemon:
    settings = daemon_settings(tmp_path, str(engine.url))
    settings = settings.model_copy(update={"forecasting": settings.forecasting.model_copy(
        update={"model": "seasonal_naive", "horizon_hours": 24})})
    return Daemon(settings, engine, clock=lambda: NOW)


def _fleet(engine: Engine, days: int) -> None:
    devices = make_fleet(engine)
    with engine.begin() as c:
        c.execute(update(Device).values(status="active"))
    simulate_history(engine, devices, NOW.date(), days=days)


async def test_too_little_history_says_so(engine: Engine, tmp_path: Path):
    _fleet(engine, days=3)
    d = _daemon(tmp_path, engine)
    try:
        await d._baselines_step()
        st = d.parts.forecasts.status
        assert st.state == "insufficient_history" and "need 7" in st.message
        assert d.parts.forecasts.latest is None and d.parts.forecasts.owner_forecast() is None
        text = d.parts.metrics.render().decode()
        assert 'vpp_forecast_state{state="insufficient_history"} 1.0' in text
        assert 'vpp_forecast_sites{which="forecast"} 0.0' in text
    finally:
        d.parts.db.close()


async def test_forecast_refreshed_from_telemetry(engine: Engine, tmp_path: Path):
    _fleet(engine, days=8)
    d = _daemon(tmp_path, engine)
    try:
        await d._baselines_step()
        st = d.parts.forecasts.status
        assert st.state == "ok", st.message
        fc = d.parts.forecasts.latest
        assert fc is not None and st.sites_forecast == st.sites_total > 0
        # history ends at local midnight of the event day: the forecast starts there
        assert fc.origin == datetime(2026, 7, 14, 16, 0, tzinfo=UTC)
        p10, p90 = fc.quantile(0.1).to_numpy(), fc.quantile(0.9).to_numpy()
        assert np.isfinite(p10).all() and (p90 >= p10).all() and p90.mean() > 0
        of = d.parts.forecasts.owner_forecast()
        assert of is not None and len(of.values_kw) > 0
        assert all(v.shape == (3, len(of.index)) for v in of.values_kw.values())
        text = d.parts.metrics.render().decode()
        assert 'vpp_forecast_state{state="ok"} 1.0' in text
        assert 'vpp_forecast_refreshes_total{outcome="refit"} 1.0' in text
        # nothing new: a second step does not refit or refresh
        await d._baselines_step()
        text = d.parts.metrics.render().decode()
        assert 'vpp_forecast_refreshes_total{outcome="refit"} 1.0' in text
        assert 'outcome="refresh"' not in text
    finally:
        d.parts.db.close()


async def test_bid_uses_the_daemon_forecast_and_the_scheduler_envelope(
        engine: Engine, tmp_path: Path):
    from bidding.synthetic import TZ, add_event
    from bidding.workflow import bid_event
    from tests.vpp.daemon.harness import PROGRAMME

    _fleet(engine, days=8)
    d = _daemon(tmp_path, engine)
    try:
        await d._baselines_step()
        of = d.parts.forecasts.owner_forecast()
        ev = add_event(engine, datetime(2026, 7, 15, 19, 0, tzinfo=TZ),
                       programme=PROGRAMME)
        bid, offer = bid_event(engine, ev, d.parts.settings.bidding.programmes_dir,
                               calendar=d.parts.infra.calendar.workdays, load_forecast=of,
                               scheduler_envelope=True, history_days=3)
        src = bid.detail["sources"]
        assert src and all(v == {"quantiles": "forecast", "envelope": "scheduler envelope"}
                           for v in src.values())
        assert 0 < bid.declared_kw <= 12_000.0
    finally:
        d.parts.db.close()


async def test_a_failing_refresh_is_reported_and_baselines_still_run(
        engine: Engine, tmp_path: Path, monkeypatch):
    _fleet(engine, days=1)
    d = _daemon(tmp_path, engine)

    async def boom() -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(d.parts.forecasts, "step", boom)
    try:
        await d._baselines_step()  # does not raise
        assert d.parts.forecasts.status.state == "error" and "disk on fire" in d.parts.forecasts.status.message
        text = d.parts.metrics.render().decode()
        assert 'vpp_forecast_refreshes_total{outcome="error"} 1.0' in text
        assert "vpp_devices{" in text  # the rest of the step ran
    finally:
        d.parts.db.close()
