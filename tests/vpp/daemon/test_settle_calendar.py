"""Settlement picks its baseline days on the configured working-day calendar (issue 17, item 4).

The same metered history, settled through the daemon's path (``settle_event_db``) with
``forecasting.calendar = "weekend"`` and then re-settled with ``"china"``, uses different
baseline days when the history holds a Chinese public holiday (2026-06-19, the Dragon Boat
Festival, a Friday) or an adjusted working day (2026-09-20, a Sunday worked before National
Day). Before the fix settlement always used the Chinese calendar, whatever was configured.
The synthetic fleet's load follows Monday-Friday; which days count is the calendar's alone.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bidding.synthetic import TZ, add_event, make_fleet, simulate_event_day, simulate_history
from bidding.workflow import bid_event
from tests.vpp.daemon.harness import PROGRAMME, daemon_settings
from vpp.calendar import make_calendar
from vpp.config import Settings
from vpp.daemon.settle import HISTORY, SettleRun, settle_event_db
from vpp.db import session_scope
from vpp.models import Settlement


def _with_calendar(settings: Settings, name: str) -> Settings:
    """``settings`` with ``forecasting.calendar = name`` (validated)."""
    fc = type(settings.forecasting).model_validate(
        {**settings.forecasting.model_dump(), "calendar": name})
    return settings.model_copy(update={"forecasting": fc})


def _days(run: SettleRun) -> set[tuple[date, ...]]:
    """The baseline days each owner's settlement used (one tuple per owner)."""
    assert run.method == HISTORY and run.outcome is not None
    return {tuple(b.days_used) for b in run.outcome.baselines.values()}


def _stored_days(engine: Engine, run: SettleRun) -> set[tuple[str, ...]]:
    """The baseline days recorded in the stored settlement's detail."""
    with session_scope(engine) as s:
        st = s.get(Settlement, run.settlement.id)
        assert st is not None
        return {tuple(b["days_used"]) for b in st.detail["baselines"].values()}


def _iso(days: list[date]) -> set[tuple[str, ...]]:
    return {tuple(str(d) for d in days)}


@pytest.mark.parametrize(("event_day", "weekend_days", "china_days"), [
    # a Chinese public holiday on a Friday: not a baseline day in China, one on plain weekends
    (date(2026, 6, 24),
     [date(2026, 6, d) for d in (17, 18, 19, 22, 23)],
     [date(2026, 6, d) for d in (16, 17, 18, 22, 23)]),
    # an adjusted working Sunday: a baseline day in China, not on plain weekends
    (date(2026, 9, 23),
     [date(2026, 9, d) for d in (16, 17, 18, 21, 22)],
     [date(2026, 9, d) for d in (17, 18, 20, 21, 22)]),
], ids=["public-holiday", "adjusted-workday"])
def test_settlement_uses_the_configured_calendar(
        engine: Engine, tmp_path: Path, event_day: date, weekend_days: list[date],
        china_days: list[date]) -> None:
    base = daemon_settings(tmp_path, str(engine.url))
    weekend, china = _with_calendar(base, "weekend"), _with_calendar(base, "china")
    assert base.forecasting.calendar == "china"  # the default: "weekend" must be configured
    devices = make_fleet(engine)
    simulate_history(engine, devices, event_day, days=12)
    start = datetime.combine(event_day, datetime.min.time(), TZ) + timedelta(hours=19)
    end = start + timedelta(hours=2)
    ev = add_event(engine, start, programme=PROGRAMME)
    _, offer = bid_event(engine, ev, weekend.bidding.programmes_dir,
                         calendar=make_calendar(weekend.forecasting.calendar))
    declared = offer.owner_declared_kw()
    simulate_event_day(engine, devices, start, end, declared, dict.fromkeys(declared, 1.0))

    on_weekend = settle_event_db(engine, ev, weekend, actor="daemon", rebound_h=0.0)
    assert on_weekend.created and on_weekend.settlement.version == 1
    assert _days(on_weekend) == {tuple(weekend_days)}
    assert _stored_days(engine, on_weekend) == _iso(weekend_days)

    # the same history on the Chinese calendar: other days, so a new settlement version
    on_china = settle_event_db(engine, ev, china, actor="daemon", rebound_h=0.0, resettle=True)
    assert on_china.created and on_china.settlement.version == 2
    assert _days(on_china) == {tuple(china_days)}
    assert _stored_days(engine, on_china) == _iso(china_days)
