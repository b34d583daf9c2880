"""Per-site and whole-fleet load forecasts with quantiles, for the scheduler and the bidder.

:class:`LoadForecaster` is trained now and then (``fit``) and asked for a forecast whenever new
telemetry arrives (``forecast``): the forecast starts at the interval after the last reading
and runs ``horizon_hours`` at the market interval. All sites go through the model in batches
(arrays over sites and lead times, never a Python loop per site per step).

The fleet forecast is a forecast of the fleet's summed load as a series of its own (quantiles of
a sum are not the sum of quantiles; diversity across sites narrows the band).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecasting.calendars import DayCalendar, make_calendar
from forecasting.models import GbmQuantileModel, seasonal_naive, training_origins
from forecasting.panel import build_panel
from vpp.config import ForecastSettings
from vpp.errors import ValidationError

FLEET = "fleet"


@dataclass
class LoadForecast:
    """Quantile forecasts in kW: ``values_kw[q]`` has the target times as index, sites as columns."""

    origin: pd.Timestamp
    model: str
    quantiles: list[float]
    values_kw: dict[float, pd.DataFrame]

    def quantile(self, q: float) -> pd.DataFrame:
        if q not in self.values_kw:
            have = ", ".join(f"{x:g}" for x in self.quantiles)
            raise ValidationError(f"quantile {q:g} not forecast (have {have})")
        return self.values_kw[q]

    def to_long(self) -> pd.DataFrame:
        """One row per (target time, site) with a ``p10``/``p50``/... column per quantile."""
        parts = {f"p{round(q * 100)}": df.stack() for q, df in self.values_kw.items()}
        out = pd.DataFrame(parts)
        out.index.names = ["ts", "site"]
        return out


@dataclass
class LoadForecaster:
    """The configured model (``settings.model``) with its calendar; see the module docstring."""

    settings: ForecastSettings
    calendar: DayCalendar | None = None
    model: GbmQuantileModel | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.calendar is None:
            self.calendar = make_calendar(self.settings.calendar)

    @property
    def horizon_steps(self) -> int:
        return self.settings.horizon_hours * 60 // self.settings.interval_minutes

    def _panel(self, load_kw: pd.DataFrame, temperature_c: pd.Series | None):  # type: ignore[no-untyped-def]
        assert self.calendar is not None
        return build_panel(load_kw, self.calendar, temperature_c=temperature_c,
                           horizon_steps=self.horizon_steps,
                           interval_minutes=self.settings.interval_minutes)

    def fit(self, load_kw: pd.DataFrame, temperature_c: pd.Series | None = None,
            *, include_fleet: bool = True) -> LoadForecaster:
        """Train the LightGBM model on the history in ``load_kw`` (columns = sites, kW).

        With ``include_fleet`` the summed load is one more training series, so that fleet
        forecasts are in-distribution. A no-op for ``seasonal_naive``.
        """
        if self.settings.model != "lightgbm":
            return self
        frame = load_kw
        if include_fleet and load_kw.shape[1] > 1:
            frame = load_kw.assign(**{FLEET: load_kw.sum(axis=1, min_count=1)})
        panel = self._panel(frame, temperature_c)
        s = self.settings
        origins = training_origins(panel, panel.n_data, s.train_origin_stride_hours * 60
                                   // s.interval_minutes, s.train_days)
        self.model = GbmQuantileModel(
            list(s.quantiles), n_estimators=s.n_estimators, learning_rate=s.learning_rate,
            num_leaves=s.num_leaves, min_data_in_leaf=s.min_data_in_leaf,
            max_train_rows=s.max_train_rows, seed=s.seed, num_threads=s.num_threads,
            quantile_method=s.quantile_method, calibration_days=s.calibration_days,
        ).fit(panel, origins, self.horizon_steps)
        return self

    def forecast(self, load_kw: pd.DataFrame, temperature_c: pd.Series | None = None
                 ) -> LoadForecast:
        """Forecast every column of ``load_kw`` from the interval after its last row."""
        if len(load_kw.index) == 0:
            raise ValidationError("no load data to forecast from")
        panel = self._panel(load_kw, temperature_c)
        origin = panel.n_data
        h = self.horizon_steps
        qs = list(self.settings.quantiles)
        if self.settings.model == "seasonal_naive":
            values = seasonal_naive(panel, np.array([origin]), h, qs)
        else:
            if self.model is None:
                raise ValidationError("the LightGBM forecaster must be fitted before forecasting")
            values = self.model.predict(panel, np.array([origin]), h)
        index = panel.index[origin: origin + h]
        out = {q: pd.DataFrame(values[j, 0].T, index=index, columns=panel.sites)
               for j, q in enumerate(qs)}
        return LoadForecast(origin=index[0], model=self.settings.model, quantiles=qs,
                            values_kw=out)

    def forecast_fleet(self, load_kw: pd.DataFrame, temperature_c: pd.Series | None = None
                       ) -> LoadForecast:
        """Forecast the summed load of all columns as one series named ``fleet``."""
        total = load_kw.sum(axis=1, min_count=1).to_frame(FLEET)
        return self.forecast(total, temperature_c)
