"""``vpp schedule``: plan one peak-shaving call for a fleet from the command line.

The fleet comes from a fleet TOML (``[[owners]]`` ... devices, e.g. ``config/zhuzhou-demo.toml``)
or is generated (``--generate N`` mixed devices). States and baselines are illustrative
(:mod:`vpp.scheduler.synthetic`): this command demonstrates and checks the scheduler; the daemon
feeds it real telemetry and forecasts. Energy is priced as the daemon prices it: the time-of-use
tariff of the configured programme (``bidding.programme``) in force on the day of the call.
``--tou`` also plans the batteries from midnight to the call against that tariff, holding the
reserve the call's plan draws (:mod:`vpp.scheduler.tou`), and prints the saving.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pydantic
import typer
from rich.table import Table

from bidding.export_rule import battery_discharge_cap_kw
from bidding.money import fmt_yuan
from bidding.programme import load_programme
from bidding.tariff import tou_saving
from vpp.cli.common import app_context, console
from vpp.config import OwnerSpec
from vpp.device_kinds import DeviceKind
from vpp.errors import ConfigError, ValidationError
from vpp.scheduler import DispatchModel, EventCall, HorizonData, SolverOptions, Weights
from vpp.scheduler.synthetic import demo_state, mixed_fleet
from vpp.scheduler.tou import call_reserves, tou_schedule
from vpp.timeutil import now as now_in

#: ASSUMPTION (illustrative, as the demo states): a battery's host site draws half the
#: battery's rating, as the simulator's home batteries (docs/simulation.md); the export rule
#: caps its discharge there where the programme does not count export
DEMO_HOST_LOAD_SHARE = 0.5
_EVENT = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def _fleet_specs(path: Path) -> list:
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        owners = [OwnerSpec.model_validate(o) for o in raw.get("owners", [])]
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: owners: {loc}: {err['msg']}") from None
    specs = [(o.name, d) for o in owners for s in o.sites for g in s.gateways for d in g.devices]
    if not specs:
        raise ConfigError(f"{path}: no devices under [[owners]]")
    return specs


def _window(event: str, interval_minutes: int) -> tuple[int, int]:
    m = _EVENT.match(event.strip())
    if not m:
        raise ValidationError(f"--event must look like 18:00-20:00, got {event!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if not (0 <= start < end <= 24 * 60) or start % interval_minutes or end % interval_minutes:
        raise ValidationError(
            f"--event {event!r} must lie within one day, start before it ends, and fall on "
            f"{interval_minutes}-minute boundaries"
        )
    return start // interval_minutes, end // interval_minutes


def schedule(
    ctx: typer.Context,
    fleet_file: Path | None = typer.Option(None, "--fleet", help="Fleet TOML with [[owners]]."),
    generate: int = typer.Option(0, "--generate", min=0, help="Generate N mixed devices instead."),
    event: str = typer.Option("18:00-20:00", "--event", help="Call window, local time HH:MM-HH:MM."),
    reduction_kw: float | None = typer.Option(
        None, "--reduction-kw", help="Requested reduction (kW); default 10 % of the baseline."),
    day: str | None = typer.Option(None, "--day", help="Day of the call (YYYY-MM-DD), default tomorrow."),
    seed: int = typer.Option(0, help="Seed for generated fleets and states."),
    plot: Path | None = typer.Option(None, "--plot", help="Write baseline, plan and target (PNG)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    tou: bool = typer.Option(
        False, "--tou", help="Also plan the batteries against the tariff from midnight to the "
        "call, holding the reserve the call's plan needs, and show the saving."),
) -> None:
    """Plan one peak-shaving call: per-device setpoints, fleet response, shortfall."""
    settings = app_context(ctx).settings
    sch = settings.scheduler
    minutes = settings.service.market_interval_minutes
    n = 24 * 60 // minutes
    if (fleet_file is None) == (generate == 0):
        raise ValidationError("give exactly one of --fleet FILE or --generate N")
    tz_now = now_in(settings.service.timezone)
    try:
        the_day = date.fromisoformat(day) if day else tz_now.date() + timedelta(days=1)
    except ValueError:
        raise ValidationError(f"--day must be YYYY-MM-DD, got {day!r}") from None
    start, end = _window(event, minutes)
    day_start = datetime.combine(the_day, datetime.min.time(), tzinfo=tz_now.tzinfo)
    if day_start + timedelta(minutes=start * minutes) < tz_now:
        raise ValidationError(f"the call {the_day} {event} is in the past")
    if fleet_file is not None:
        devices, base = demo_state(_fleet_specs(fleet_file), n, minutes, seed)
    else:
        devices, base = mixed_fleet(generate, n, minutes, seed)
    programme = load_programme(settings.bidding.programme, settings.bidding.programmes_dir,
                               the_day)
    index = pd.date_range(day_start, periods=n, freq=f"{minutes}min")
    price = programme.tariff.price_series(index).to_numpy()
    if reduction_kw is None:
        reduction_kw = round(0.10 * float(base[:, start:end].sum(axis=0).mean()), 1)
    data = HorizonData(base, price, EventCall(start, end, reduction_kw), interval_minutes=minutes)
    t0 = time.perf_counter()
    with console.status(f"building the QP for {len(devices)} devices"):
        model = DispatchModel(devices, n, interval_minutes=minutes,
                              weights=Weights(shortfall_yuan_per_kwh=sch.shortfall_penalty_yuan_per_kwh),
                              options=SolverOptions(eps=sch.eps, polishing=sch.polishing))
    with console.status("solving"):
        plan = model.solve(devices, data)
    wall = time.perf_counter() - t0
    summary = plan.summary() | {"day": the_day.isoformat(), "event": event,
                                "reduction_kw_requested": reduction_kw,
                                "programme": programme.name,
                                "price_yuan_per_kwh": [float(p) for p in price],
                                "build_s": round(model.build_time_s, 3),
                                "wall_s": round(wall, 3)}
    if tou:
        summary["tou"] = between_calls(devices, plan, base, programme, index, start, end,
                                       minutes)
    if as_json:
        console.print_json(json.dumps(summary))
    else:
        _print(devices, plan, start, end, summary)
        if tou:
            _print_tou(summary["tou"])
    if plot is not None:
        _plot(plan, start, end, minutes, plot)
        console.print(f"plot written to {plot}")


def between_calls(devices, plan, base: np.ndarray, programme, index: pd.DatetimeIndex,
                  start: int, end: int, minutes: int) -> dict:
    """The batteries' schedule from midnight to the call (:mod:`vpp.scheduler.tou`): the
    reserve the call's ``plan`` draws from each, held at the call's start and bought at the
    tariff's cheapest intervals before it, no export past the site meter unless the programme
    counts it (the host site's load: :data:`DEMO_HOST_LOAD_SHARE`), and the bill with and
    without it (:func:`bidding.tariff.tou_saving`)."""
    rows = [i for i, d in enumerate(devices) if d.kind is DeviceKind.BATTERY]
    if not rows:
        raise ValidationError("--tou: the fleet has no battery")
    if start == 0:
        raise ValidationError("--tou: the call starts at midnight; nothing to plan before it")
    bats = [devices[i] for i in rows]
    bbase = base[rows, :start]
    host = np.array([DEMO_HOST_LOAD_SHARE * d.rated_power_kw for d in bats])[:, None]
    cap = battery_discharge_cap_kw(programme.export_counts, bbase, bbase + host)
    reserves = call_reserves(plan, bats, start, end)
    tp = tou_schedule(bats, bbase, programme.tariff.price_series(index[:start]).to_numpy(),
                      interval_minutes=minutes, reserves=reserves, discharge_cap_kw=cap)
    money = tou_saving(tp.plan.setpoint_kw, tp.reference.setpoint_kw, index[:start],
                       programme.tariff, minutes)
    return tp.summary() | {
        "until": index[start].strftime("%H:%M"), "export_counts": programme.export_counts,
        "host_load_share": DEMO_HOST_LOAD_SHARE, "without_fen": money.without_fen,
        "with_fen": money.with_fen, "saving_fen": money.saving_fen}


def _print_tou(t: dict) -> None:
    table = Table("device", "reserve kWh", "target SoC %", "planned SoC %",
                  title=f"Batteries until the call ({t['until']}): the reserve it needs")
    for r in t["reserves"]:
        table.add_row(str(r["device_id"]), f"{r['reserve_kwh']:,.1f}",
                      f"{r['target_soc_pct']:.1f}", f"{r['planned_soc_pct']:.1f}")
    console.print(table)
    console.print(
        f"{t['batteries']} batteries hold {t['reserve_kwh']:,.1f} kWh for the call; energy "
        f"bill until {t['until']}: {fmt_yuan(t['with_fen'])} yuan against "
        f"{fmt_yuan(t['without_fen'])} without the tariff schedule (saving "
        f"{fmt_yuan(t['saving_fen'])} yuan; export past the site meter "
        f"{'counts' if t['export_counts'] else 'not used'})", highlight=False)
    for w in t["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {w}", highlight=False)


def _print(devices, plan, start: int, end: int, summary: dict) -> None:
    table = Table("kind", "devices", "baseline kW", "plan kW", "reduction kW",
                  title=f"Call {summary['event']} on {summary['day']}: mean over the window")
    kinds = np.array([d.kind.value for d in devices])
    for k in sorted(set(kinds)):
        m = kinds == k
        b = plan.baseline_kw[m, start:end].sum(axis=0).mean()
        p = plan.setpoint_kw[m, start:end].sum(axis=0).mean()
        table.add_row(k, str(int(m.sum())), f"{b:,.1f}", f"{p:,.1f}", f"{b - p:,.1f}")
    console.print(table)
    console.print(
        f"requested {summary['reduction_kw_requested']:,.1f} kW; delivered at least "
        f"{summary['reduction_kw_min_in_window']:,.1f} kW; shortfall {summary['shortfall_kwh']} kWh; "
        f"energy cost {summary['energy_cost_yuan']:,.2f} yuan (tariff of {summary['programme']}); "
        f"{summary['status']} in "
        f"{summary['iterations']} iterations, {summary['solve_time_s']} s solve, "
        f"{summary['wall_s']} s total"
    )
    for w in plan.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
    for b in plan.binding[:6]:
        console.print(f"  binding: {b.describe()}", highlight=False)


def _plot(plan, start: int, end: int, minutes: int, path: Path) -> None:
    from vpp.plotting import pyplot, save_figure

    plt = pyplot()

    hours = np.arange(plan.baseline_kw.shape[1]) * minutes / 60.0
    base = plan.baseline_kw.sum(axis=0)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.step(hours, base, where="post", label="baseline", color="0.4")
    ax.step(hours, plan.setpoint_kw.sum(axis=0), where="post", label="plan", color="tab:blue")
    tgt = base - np.nan_to_num(plan.target_kw)
    ax.step(hours[start:end], tgt[start:end], where="post", label="baseline - requested",
            color="tab:red", linestyle="--")
    ax.axvspan(hours[start], hours[end - 1] + minutes / 60.0, color="tab:red", alpha=0.08)
    ax.set_xlabel("hour of day")
    ax.set_ylabel("fleet power (kW)")
    ax.legend(loc="upper left")
    ax.set_title("Dispatch plan for the call")
    fig.tight_layout()
    save_figure(fig, path)
