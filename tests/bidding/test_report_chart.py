"""The event chart draws every interval of the event to its end, the last one included (it was
drawn as a bare point: a post step over the interval starts stops at the last start)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from bidding import report as rpt
from bidding.programme import load_programme
from bidding.settlement import settle_event

PROGRAMMES = Path(__file__).resolve().parents[2] / "config" / "programmes"


def _view(n: int) -> rpt.EventView:
    index = pd.date_range("2026-07-15 19:00", periods=n, freq="15min", tz="Asia/Shanghai")
    base = np.full((1, n), 100.0)
    metered = base - np.array([40.0, 50.0, 60.0, 70.0][:n])
    band = load_programme("hunan-2026", PROGRAMMES, date(2026, 7, 15)).band
    result = settle_event(index=index, owner_ids=[1], baseline_kw=base, metered_kw=metered,
                          owner_declared_kw=[50.0], price_yuan_per_kwh=Decimal("2"), band=band,
                          fee_pct=Decimal("15"), interval_minutes=15, export_counts=True)
    return rpt.view_from_detail(9, "E9", "hunan-2026", 1, index[0].isoformat(),
                                (index[-1] + pd.Timedelta(minutes=15)).isoformat(),
                                result.to_dict(), {1: "Mall"})


def _lines(fig) -> dict[str, tuple[pd.DatetimeIndex, np.ndarray]]:  # noqa: ANN001
    """Every line of the figure by "<y label>:<label>": its x (datetimes) and y data."""
    return {f"{ax.get_ylabel()}:{line.get_label()}":
            (pd.DatetimeIndex(line.get_xdata()), np.asarray(line.get_ydata()))
            for ax in fig.axes for line in ax.get_lines()}


def test_every_interval_is_drawn_to_its_end_in_local_time(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    view = _view(4)
    fig = rpt.event_figure(view)
    try:
        lines = _lines(fig)
    finally:
        plt.close(fig)
    x, y = lines["response (kW):response"]
    # 19:00 .. 20:00 local: four intervals and the end of the last one
    assert pd.Timestamp(x[0]) == pd.Timestamp("2026-07-15 19:00")
    assert pd.Timestamp(x[-1]) == pd.Timestamp("2026-07-15 20:00")
    # the last interval (19:45-20:00) is drawn at its response, 70 kW
    assert list(y[-2:]) == [70.0, 70.0]
    x, _ = lines["load (kW):metered"]
    assert pd.Timestamp(x[-1]) == pd.Timestamp("2026-07-15 20:00")
    assert rpt.event_chart(view, tmp_path / "e.png").stat().st_size > 0


def test_a_one_interval_event_is_drawn_over_its_duration() -> None:
    import matplotlib.pyplot as plt

    fig = rpt.event_figure(_view(1))
    try:
        x, y = _lines(fig)["response (kW):response"]
    finally:
        plt.close(fig)
    assert [pd.Timestamp(t) for t in x] == [pd.Timestamp("2026-07-15 19:00"),
                                             pd.Timestamp("2026-07-15 19:15")]
    assert list(y) == [40.0, 40.0]
