"""Load forecasting, flexibility forecasts and customer baselines (see docs/forecasting.md).

- :mod:`forecasting.data`: read and validate load CSV files;
- :mod:`forecasting.forecast`: per-site and fleet quantile forecasts (seasonal naive, LightGBM);
- :mod:`forecasting.flexibility`: flexibility per device kind;
- :mod:`forecasting.baselines`: customer baselines (similar days, X-of-Y, forecast);
- :mod:`forecasting.backtest`: rolling-origin backtests with :mod:`forecasting.metrics`.
"""
