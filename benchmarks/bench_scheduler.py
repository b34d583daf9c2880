"""Scheduler benchmark: build once, warm re-solve, overhead, cvxpy baseline, Clarabel, Dask.

For mixed fleets (40 % batteries, 30 % EV chargers, 15 % buildings, 15 % industrial loads, every
device with its own random state: nothing to aggregate) over 96 intervals of 15 minutes:

- first build (assembly + OSQP setup) and cold solve; warm re-solve after a price change
  (at ``--eps``, default 1e-4); a further warm re-plan at ``--replan-eps`` (default 1e-3) after
  another price change, with its own (b) and (c) (``--replan-sizes``);
- (a) our end-to-end re-solve / OSQP's own solve time inside it (target <= 1.2);
- the baseline, a competent cvxpy model (``benchmarks/cvxpy_baseline.py``, at the sizes in
  ``--cvxpy-sizes``): the same partial-sum QP, ``cp.Parameter`` for the cost and bounds, DPP,
  warm start, OSQP at the same eps and settings; its set-up + first plan and its warm re-solve
  after the price change, each as a ratio cvxpy / ours;
- a labelled extra, (b): a naive cvxpy model rebuilt and solved from scratch for the same data /
  our warm re-solve, at the sizes in ``--naive-sizes`` only: fleet rows summing the devices
  directly, no parameters, no warm start, in a child process stopped after ``--naive-timeout``
  s (the ratio is then a lower bound);
- (c) relative objective gap against Clarabel (interior point, tol 1e-8) on the same QP
  (target < 1e-3);
- the daemon's kind of re-solve (``--receding-sizes``): a re-plan every interval through the
  call from the previous plan's state, with SoC telemetry noise and 1 % of the devices
  dropping out; its (b) against the naive model rebuilt for the dropout re-plan; over the day
  (96 intervals) or, with ``--receding-window 24``, over the daemon's own horizon (the call and
  its 4 h tail);
- a partitioned solve on Dask (exchange ADMM, in-process cluster) for ``--partition-devices`` devices:
  wall time and gap to the Lagrangian bound (sum of partition bounds), with the coordinator's
  residual balancing of rho, a re-plan after a price change on the kept actors, and, as the
  same run's baselines, with rho fixed (unless ``--skip-fixed-rho``) and on one worker (the
  partitions solved in turn).

Ratios are measured in the same run. Ends with one JSON line. ``--quick`` finishes in < 60 s.
Run: ``uv run python benchmarks/bench_scheduler.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from vpp.device_kinds import DeviceKind
from vpp.scheduler import DispatchModel, EventCall, HorizonData, SolverOptions
from vpp.scheduler.aggregate import aggregate, disaggregate
from vpp.scheduler.redispatch import advance, replan_inputs
from vpp.scheduler.reference import solve_clarabel
from vpp.scheduler.synthetic import catalog_fleet, event_window, mixed_fleet, tou_price

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cvxpy_baseline import MINUTES, against_ours, naive_cvxpy  # noqa: E402


def log(msg: str) -> None:
    print(msg, flush=True)


def call_for(base: np.ndarray, n: int) -> EventCall:
    s, e = int(n * 0.75), int(n * 0.75) + 8  # 18:00-20:00 for n=96
    return EventCall(s, e, round(0.10 * float(base[:, s:e].sum(axis=0).mean()), 1))


def _naive_child(conn, devs, data: HorizonData, n: int, eps: float) -> None:
    conn.send(naive_cvxpy(devs, data, n, eps))
    conn.close()


def naive_with_timeout(n_dev: int, n: int, seed: int, price2, eps: float,
                       timeout_s: float) -> tuple[float, float | None]:
    """:func:`naive_on` for the benchmark's fleet and call at prices ``price2``."""
    devs, base = mixed_fleet(n_dev, n, seed=seed, interval_minutes=MINUTES)
    return naive_on(devs, HorizonData(base, price2, call_for(base, n), interval_minutes=MINUTES), n, eps, timeout_s)


def naive_on(devs, data: HorizonData, n: int, eps: float,
             timeout_s: float) -> tuple[float, float | None]:
    """Run :func:`naive_cvxpy` in a child process (forked: nothing to pickle); past
    ``timeout_s`` stop it and return ``(timeout_s, None)`` (the ratio is then a lower bound)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_naive_child, args=(child, devs, data, n, eps))
    proc.start()
    child.close()
    if parent.poll(timeout_s):
        out = parent.recv()
        proc.join()
        return out
    proc.kill()
    proc.join()
    return timeout_s, None


def bench_size(n_dev: int, n: int, eps: float, naive: bool, clarabel: bool, polish: bool,
               group_size: int | None = None, seed: int = 0,
               naive_timeout_s: float = 1800.0, replan_eps: float = 0.0,
               clarabel_replan: bool = False, cvx: bool = True) -> dict[str, Any]:
    devs, base = mixed_fleet(n_dev, n, seed=seed, interval_minutes=MINUTES)
    price = tou_price(n, interval_minutes=MINUTES)
    data = HorizonData(base, price, call_for(base, n), interval_minutes=MINUTES)
    t0 = time.perf_counter()
    model = DispatchModel(devs, n, options=SolverOptions(eps=eps, polishing=polish),
                          group_size=group_size, interval_minutes=MINUTES)
    first = model.solve(devs, data)
    first_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "devices": n_dev, "group_size": model.group_size, "variables": model.nx,
        "constraints": model.nc, "nnz": model.nnz,
        "build_s": round(model.build_time_s, 3), "setup_s": round(model.setup_time_s, 3),
        "first_solve_s": round(first_s, 3), "first_iterations": first.iterations,
        "first_status": first.status, "first_feasible": first.feasible,
    }
    log(f"  N={n_dev} (group size {model.group_size}, {model.nx} variables, {model.nnz} nnz): "
        f"build {model.build_time_s:.2f} s, OSQP setup {model.setup_time_s:.2f} s, "
        f"first plan {first_s:.2f} s ({first.iterations} it, {first.status})")
    rng = np.random.default_rng(seed + 1)
    data2 = HorizonData(base, price * (1 + 0.05 * rng.standard_normal(n)), data.call, interval_minutes=MINUTES)
    t0 = time.perf_counter()
    plan = model.solve(devs, data2)
    warm_s = time.perf_counter() - t0
    bare_s = plan.solve_time_s
    out |= {"warm_resolve_s": round(warm_s, 3), "warm_iterations": plan.iterations,
            "warm_status": plan.status, "bare_osqp_solve_s": round(bare_s, 3),
            "ratio_a_overhead": round(warm_s / bare_s, 3) if bare_s > 0 else None,
            "feasible": plan.feasible,
            "max_shortfall_kw": round(float(plan.shortfall_kw.max()), 3)}
    log(f"  N={n_dev}: warm re-solve {warm_s:.2f} s ({plan.iterations} it, {plan.status}, "
        f"call met={plan.feasible}); "
        f"bare OSQP {bare_s:.2f} s -> (a) overhead {warm_s / bare_s:.3f}")
    q, lo, hi, _ = model.vectors(devs, data2)
    ours_obj = float(model.solve_raw(q, lo, hi).info.obj_val)
    if cvx:
        c = against_ours(model, devs, data, data2, first_s, warm_s, plan.iterations, ours_obj)
        out["cvxpy"] = c
        log(f"  N={n_dev}: competent cvxpy (same QP, parameters, DPP, warm start, OSQP eps "
            f"{eps:g}): set-up + first plan {c['setup_and_first_s']:.2f} s "
            f"({c['first_iterations']} it) = {c['ratio_setup']:.2f}x ours; warm re-solve "
            f"{c['resolve_s']:.2f} s ({c['resolve_iterations']} it) = {c['ratio_resolve']:.2f}x "
            f"ours ({c['ratio_resolve_iterations']:.2f}x the iterations); objective gap "
            f"{c['objective_gap_to_ours']:.1e}")
    if naive:
        naive_s, naive_obj = naive_with_timeout(n_dev, n, seed, data2.price_yuan_per_kwh, eps,
                                                naive_timeout_s)
        done = naive_obj is not None
        out |= {"naive_cvxpy_s": round(naive_s, 3), "naive_finished": done,
                "ratio_b_speedup": round(naive_s / warm_s, 2)}
        if done:
            log(f"  N={n_dev}: [extra] naive cvxpy rebuild+solve {naive_s:.2f} s -> (b) "
                f"{naive_s / warm_s:.1f}x (objective {naive_obj:.6g} vs ours {ours_obj:.6g})")
        else:
            log(f"  N={n_dev}: [extra] naive cvxpy rebuild+solve stopped after {naive_s:.0f} s without a "
                f"plan -> (b) > {naive_s / warm_s:.1f}x (lower bound)")
    if clarabel:
        ref = solve_clarabel(model.P, q, model.A, lo, hi, tol=1e-8)
        gap = abs(ours_obj - ref.obj_val) / max(abs(ref.obj_val), 1e-9)
        out |= {"clarabel_s": round(ref.solve_time_s, 3), "clarabel_status": ref.status,
                "ratio_c_objective_gap": float(f"{gap:.3e}")}
        log(f"  N={n_dev}: Clarabel {ref.solve_time_s:.2f} s ({ref.status}) -> (c) gap {gap:.2e}")
    if replan_eps:
        # A further re-plan (another new price forecast) at a coarser tolerance, warm from the
        # plan above: what a receding-horizon re-plan every few minutes would run.
        model.set_options(SolverOptions(eps=replan_eps, polishing=polish))
        data3 = HorizonData(base, price * (1 + 0.05 * rng.standard_normal(n)), data.call, interval_minutes=MINUTES)
        t0 = time.perf_counter()
        plan3 = model.solve(devs, data3)
        re_s = time.perf_counter() - t0
        r = {"eps": replan_eps, "warm_resolve_s": round(re_s, 3),
             "warm_iterations": plan3.iterations, "status": plan3.status,
             "bare_osqp_solve_s": round(plan3.solve_time_s, 3), "feasible": plan3.feasible,
             "max_shortfall_kw": round(float(plan3.shortfall_kw.max()), 3),
             "target_kw": float(np.nanmax(plan3.target_kw))}
        log(f"  N={n_dev}: re-plan at eps {replan_eps:g}: {re_s:.2f} s ({plan3.iterations} it, "
            f"{plan3.status}), call met={plan3.feasible} (max shortfall "
            f"{plan3.shortfall_kw.max():.2f} kW of {np.nanmax(plan3.target_kw):.0f} kW)")
        if naive:
            naive3_s, naive3_obj = naive_with_timeout(n_dev, n, seed, data3.price_yuan_per_kwh,
                                                      replan_eps, naive_timeout_s)
            r |= {"naive_cvxpy_s": round(naive3_s, 3), "naive_finished": naive3_obj is not None,
                  "ratio_b_speedup": round(naive3_s / re_s, 2)}
            log(f"  N={n_dev}: [extra] naive cvxpy rebuild+solve at eps {replan_eps:g}: {naive3_s:.2f} s"
                f" -> (b) {naive3_s / re_s:.1f}x")
        if clarabel_replan:
            q3, lo3, hi3, _ = model.vectors(devs, data3)
            ours3 = float(model.solve_raw(q3, lo3, hi3).info.obj_val)
            ref = solve_clarabel(model.P, q3, model.A, lo3, hi3, tol=1e-8)
            gap = abs(ours3 - ref.obj_val) / max(abs(ref.obj_val), 1e-9)
            r |= {"clarabel_s": round(ref.solve_time_s, 3), "clarabel_status": ref.status,
                  "ratio_c_objective_gap": float(f"{gap:.3e}")}
            log(f"  N={n_dev}: Clarabel {ref.solve_time_s:.2f} s ({ref.status}) -> (c) gap at "
                f"eps {replan_eps:g}: {gap:.2e}")
        out["replan"] = r
    return out


def bench_receding(n_dev: int, n: int, eps: float, naive: bool, naive_timeout_s: float,
                   seed: int = 0, sigma_soc_pct: float = 0.5, dropout: float = 0.01,
                   time_limit_s: float = 0.0, window: int = 0) -> dict:
    """The daemon's kind of re-solve: a receding-horizon re-plan every interval through the
    call, each from the previous plan's state (``advance``) with measured SoC off the plan by
    N(0, ``sigma_soc_pct``) points, and ``dropout`` of the devices going offline one interval
    into the call (they stay offline). The first re-plan (at call start - 4) catches up from
    the day's first plan and is reported on its own. (b) = naive cvxpy on the dropout re-plan's
    data / our re-plan of it.

    ``window`` > 0: the daemon's horizon instead of the day's (:func:`vpp.daemon.planning`):
    ``window`` intervals from the call's start (the call and its tail, ``[scheduler]
    event_tail_minutes``), batteries ending at their state of charge now; the first plan at the
    call's start, then a re-plan every interval of the call (the first of them reported as the
    catch-up), the dropout one interval later."""
    devs, base = mixed_fleet(n_dev, n, seed=seed, interval_minutes=MINUTES)
    call = call_for(base, n)
    price = tou_price(n, interval_minutes=MINUTES)
    if window:
        devs, base = event_window(devs, base, call.start, window)
        price = tou_price(window, start_hour=call.start * 24 / n, interval_minutes=MINUTES)
        call = EventCall(0, call.end - call.start, call.reduction_kw)
        n = window
    data = HorizonData(base, price, call, interval_minutes=MINUTES)
    model = DispatchModel(devs, n, options=SolverOptions(eps=eps), interval_minutes=MINUTES)
    plan = model.solve(devs, data)
    first_it = plan.iterations
    if time_limit_s > 0:  # re-plans only, as the daemon does ([scheduler] replan_time_limit_s)
        model.set_options(SolverOptions(eps=eps, time_limit_s=time_limit_s))
    rng = np.random.default_rng(seed + 2)
    bat = [i for i, d in enumerate(devs) if d.kind is DeviceKind.BATTERY]
    state, off = list(devs), []
    steps: list[dict] = []
    drop_at = call.start + 1 if not window else 2
    drop_inputs = None
    for now in range(max(call.start - 4, 1), call.end):
        soc = {devs[i].device_id: float(np.clip(plan.soc_pct[i, now - 1]
                                                + rng.normal(0, sigma_soc_pct), 0, 100))
               for i in bat}
        state = advance(state, plan, now, soc_pct=soc)
        if now == drop_at:
            k = max(1, int(round(dropout * n_dev)))
            off = [int(devs[i].device_id) for i in rng.choice(n_dev, size=k, replace=False)]
        devs_now, data_now = replan_inputs(state, data, now, offline=off)
        t0 = time.perf_counter()
        plan = model.solve(devs_now, data_now)
        wall = time.perf_counter() - t0
        step = {"now": now, "iterations": plan.iterations, "s": round(wall, 3),
                "bare_s": round(plan.solve_time_s, 3), "status": plan.status,
                "call_met": plan.feasible, "offline": len(off),
                "max_shortfall_kw": round(float(plan.shortfall_kw.max()), 3)}
        if time_limit_s > 0 and plan.status != "solved":
            step |= _finish_check(model, devs_now, data_now, plan, eps)
        steps.append(step)
        if now == drop_at:
            drop_inputs = (devs_now, data_now)
    catch, routine = steps[0], steps[1:]
    drop = next(x for x in routine if x["now"] == drop_at)
    its = [x["iterations"] for x in routine]
    secs = [x["s"] for x in routine]
    out = {"devices": n_dev, "eps": eps, "intervals": n, "first_plan_iterations": first_it,
           "catch_up": catch, "steps": routine,
           "routine_median_s": round(float(np.median(secs)), 3),
           "routine_max_s": round(float(max(secs)), 3),
           "routine_median_iterations": float(np.median(its)), "dropout_step": drop,
           "all_call_met": all(x["call_met"] for x in steps),
           "ratio_a_overhead": round(sum(secs) / max(sum(x["bare_s"] for x in routine), 1e-9), 3)}
    log(f"  N={n_dev}: catch-up re-plan at interval {catch['now']}: {catch['s']:.2f} s "
        f"({catch['iterations']} it); routine re-plans every interval {routine[0]['now']}-"
        f"{routine[-1]['now']}: median {np.median(secs):.2f} s ({np.median(its):.0f} it), max "
        f"{max(secs):.2f} s; with {drop['offline']} devices dropped out at {drop_at}: "
        f"{drop['s']:.2f} s ({drop['iterations']} it); call met in every re-plan: "
        f"{out['all_call_met']}")
    if naive and drop_inputs is not None:
        naive_s, naive_obj = naive_on(*drop_inputs, n, eps, naive_timeout_s)
        out |= {"naive_cvxpy_s": round(naive_s, 3), "naive_finished": naive_obj is not None,
                "ratio_b_dropout": round(naive_s / drop["s"], 2),
                "ratio_b_routine_median": round(naive_s / float(np.median(secs)), 2)}
        log(f"  N={n_dev}: [extra] naive cvxpy rebuild+solve of the dropout re-plan {naive_s:.2f} s -> "
            f"(b) {naive_s / drop['s']:.1f}x for it, {naive_s / np.median(secs):.1f}x against "
            f"the median routine re-plan")
    return out


def _finish_check(model: DispatchModel, devs, data: HorizonData, cut, eps: float) -> dict:
    """How good the time-limited re-plan ``cut`` is: its objective gap to the same re-plan run
    on to ``eps`` (warm from where it stopped) and how far its batteries' planned state of
    charge strays outside their limits (percentage points)."""
    o = model.options
    model.set_options(SolverOptions(eps=eps))
    done = model.solve(devs, data)
    model.set_options(o)
    gap = abs(cut.objective_yuan - done.objective_yuan) / max(abs(done.objective_yuan), 1e-9)
    stray = 0.0
    for i, d in enumerate(devs):
        if d.kind is DeviceKind.BATTERY and d.available:
            lo_pct = min(d.params.soc_min_pct, d.soc_pct)
            hi_pct = max(d.params.soc_max_pct, d.soc_pct)
            soc = cut.soc_pct[i, data.now_index:]
            stray = max(stray, float(np.max(lo_pct - soc)), float(np.max(soc - hi_pct)))
    return {"finished_iterations": done.iterations,
            "objective_gap_to_finished": float(f"{gap:.3e}"),
            "finished_call_met": done.feasible, "soc_outside_limits_pct": round(max(stray, 0), 3)}


def bench_aggregated(n_dev: int, n: int, eps: float, seed: int = 0) -> dict:
    """Catalogue fleet (devices repeat per unit): exact aggregation, solve, disaggregation."""
    devs, base = catalog_fleet(n_dev, n, seed=seed, interval_minutes=MINUTES)
    price = tou_price(n, interval_minutes=MINUTES)
    call = call_for(base, n)
    t0 = time.perf_counter()
    agg = aggregate(devs, base)
    agg_s = time.perf_counter() - t0
    model = DispatchModel(agg.devices, n, options=SolverOptions(eps=eps), interval_minutes=MINUTES)
    vplan = model.solve(agg.devices, HorizonData(agg.baseline_kw, price, call, interval_minutes=MINUTES))
    plan = disaggregate(vplan, agg, devs, base)
    first_s = time.perf_counter() - t0
    log(f"  catalogue N={n_dev}: {len(agg.devices)} virtual devices (aggregation {agg_s:.2f} s); "
        f"first plan {first_s:.2f} s, feasible={plan.feasible}")
    price2 = price * (1 + 0.05 * np.random.default_rng(seed + 1).standard_normal(n))
    t0 = time.perf_counter()
    agg = aggregate(devs, base)  # re-aggregated on every re-plan: state may have changed
    data2 = HorizonData(agg.baseline_kw, price2, call, interval_minutes=MINUTES)
    vplan = model.solve(agg.devices, data2)
    plan = disaggregate(vplan, agg, devs, base)
    warm_s = time.perf_counter() - t0
    q, lo, hi, _ = model.vectors(agg.devices, data2)
    ours = float(model.solve_raw(q, lo, hi).info.obj_val)
    ref = solve_clarabel(model.P, q, model.A, lo, hi, tol=1e-8)
    gap = abs(ours - ref.obj_val) / max(abs(ref.obj_val), 1e-9)
    log(f"  catalogue N={n_dev}: warm re-plan end to end {warm_s:.2f} s (OSQP "
        f"{vplan.solve_time_s:.2f} s, {vplan.iterations} it); Clarabel gap {gap:.2e}; "
        f"feasible={plan.feasible}")
    return {"devices": n_dev, "virtual_devices": len(agg.devices), "aggregate_s": round(agg_s, 3),
            "first_plan_s": round(first_s, 3), "warm_replan_s": round(warm_s, 3),
            "warm_osqp_s": round(vplan.solve_time_s, 3), "warm_iterations": vplan.iterations,
            "ratio_c_objective_gap": float(f"{gap:.3e}"), "feasible": plan.feasible}


def bench_partitioned(n_dev: int, n: int, size: int, eps: float, max_iter: int,
                      catalogue: bool, fixed_rho: bool = True) -> dict:
    """The partitioned Dask solve, with the coordinator's residual balancing of rho and, as the
    same run's baselines, with rho fixed at its starting value and on a cluster of one worker
    (a Dask worker runs its actors one at a time: the partitions solved in turn, as before
    2026-11-26)."""
    from distributed import Client

    from vpp.scheduler.partition import ActorPool, chunk, local_cluster, solve_partitioned

    devs, base = (catalog_fleet if catalogue else mixed_fleet)(n_dev, n, MINUTES, seed=7)
    price = tou_price(n, interval_minutes=MINUTES)
    data = HorizonData(base, price, call_for(base, n), interval_minutes=MINUTES)
    rng = np.random.default_rng(8)
    data2 = HorizonData(base, price * (1 + 0.05 * rng.standard_normal(n)), data.call, interval_minutes=MINUTES)
    out: dict = {"devices": n_dev, "fleet": "catalogue, aggregated" if catalogue else "mixed"}
    pool = ActorPool()

    def run(client, label: str, balance: bool, d: HorizonData, keep: ActorPool | None) -> None:
        res = solve_partitioned(
            client, devs, d, chunk(devs, size),
            options=SolverOptions(eps=eps, fallback=False), max_iter=max_iter,
            aggregate=catalogue, balance_rho=balance, pool=keep,
            progress=lambda i, rp, rd: log(f"    ADMM {i}: primal {rp:.2e} dual {rd:.2e}")
            if i % 10 == 0 else None,
        )
        log(f"  partitioned N={n_dev} in {res.partitions} partitions, {label}: "
            f"{res.wall_time_s:.1f} s, {res.iterations} ADMM iterations (converged="
            f"{res.converged}), gap to bound {res.gap:.2e}, shortfall "
            f"{res.shortfall_kw.sum() * 0.25:.1f} kWh")
        out.update({"qp_devices": res.qp_devices, "partitions": res.partitions,
                    label: {"wall_s": round(res.wall_time_s, 2), "iterations": res.iterations,
                            "converged": res.converged,
                            "objective_yuan": round(res.objective_yuan, 2),
                            "lower_bound_yuan": round(res.lower_bound_yuan, 2),
                            "gap": float(f"{res.gap:.3e}")}})

    with local_cluster() as cluster, Client(cluster) as client:
        out["workers"] = len(client.scheduler_info()["workers"])
        # balanced, then a re-plan after a +-5 % price change on the kept actors (ActorPool,
        # as the daemon re-plans), then rho fixed from scratch: the same run's baseline
        run(client, "balanced", True, data, pool)
        run(client, "balanced_replan", True, data2, pool)
        pool.release()
        if fixed_rho:
            run(client, "fixed_rho", False, data, None)
    with local_cluster(workers=1) as cluster, Client(cluster) as client:
        run(client, "one_worker", True, data, None)
    b, r, one = out["balanced"], out["balanced_replan"], out["one_worker"]
    out["ratio_replan_over_first_time"] = round(r["wall_s"] / b["wall_s"], 3)
    out["ratio_time_one_worker_over_spread"] = round(one["wall_s"] / b["wall_s"], 2)
    msg = (f"  partitioned: re-plan on the kept actors / first plan = "
           f"{out['ratio_replan_over_first_time']}x time; one worker / {out['workers']} "
           f"workers = {out['ratio_time_one_worker_over_spread']}x time")
    if fixed_rho:
        f = out["fixed_rho"]
        out |= {"ratio_time_fixed_over_balanced": round(f["wall_s"] / b["wall_s"], 2),
                "ratio_iterations_fixed_over_balanced": round(f["iterations"] / b["iterations"],
                                                              2)}
        msg += (f"; fixed rho / balanced = {out['ratio_time_fixed_over_balanced']}x time, "
                f"{out['ratio_iterations_fixed_over_balanced']}x iterations")
    log(msg)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="*")
    ap.add_argument("--cvxpy-sizes", type=int, nargs="*",
                    help="sizes at which the competent cvxpy baseline runs (default: all)")
    ap.add_argument("--naive-sizes", type=int, nargs="*",
                    help="sizes of the labelled extra: the naive cvxpy rebuild (default: none)")
    ap.add_argument("--clarabel-sizes", type=int, nargs="*")
    ap.add_argument("--partition-devices", type=int)
    ap.add_argument("--partition-size", type=int)
    ap.add_argument("--admm-iter", type=int, default=300)
    ap.add_argument("--aggregated-sizes", type=int, nargs="*")
    ap.add_argument("--partition-fleet", choices=["catalogue", "mixed"], default="catalogue")
    ap.add_argument("--skip-fixed-rho", action="store_true",
                    help="no fixed-rho baseline in the partitioned run (it runs to the cap)")
    ap.add_argument("--eps", type=float, default=1e-4)
    ap.add_argument("--polish", action="store_true", help="OSQP solution polishing")
    ap.add_argument("--group-size", type=int, default=None,
                    help="split fleet rows through partial sums of this many devices (0: off; "
                         "default: the model's automatic choice)")
    ap.add_argument("--replan-eps", type=float, default=1e-3,
                    help="eps of the further warm re-plan (0: skip it)")
    ap.add_argument("--replan-sizes", type=int, nargs="*")
    ap.add_argument("--clarabel-replan-sizes", type=int, nargs="*")
    ap.add_argument("--receding-sizes", type=int, nargs="*",
                    help="fleet sizes of the receding-horizon re-plan chain (naive (b) at the "
                         "sizes also in --naive-sizes)")
    ap.add_argument("--receding-window", type=int, default=0,
                    help="plan the receding chain on the daemon's horizon: this many intervals "
                         "from the call's start (the call and its tail; 24 for a 2 h call and "
                         "the default 4 h tail) instead of the day (0)")
    ap.add_argument("--replan-time-limit", type=float, default=0.0,
                    help="time limit (s) of each receding-horizon re-plan (0: none)")
    ap.add_argument("--naive-timeout", type=float, default=1800.0,
                    help="stop the naive cvxpy solve after this many seconds (ratio (b) is then "
                         "a lower bound)")
    args = ap.parse_args()
    n = 96
    if args.quick:
        sizes = args.sizes if args.sizes is not None else [150]
        naive = args.naive_sizes if args.naive_sizes is not None else []
        clar = args.clarabel_sizes if args.clarabel_sizes is not None else [150]
        pdev = 60 if args.partition_devices is None else args.partition_devices
        psize = args.partition_size or 30
        aggs = args.aggregated_sizes if args.aggregated_sizes is not None else [300]
        replan = args.replan_sizes if args.replan_sizes is not None else [150]
        clar_re = args.clarabel_replan_sizes if args.clarabel_replan_sizes is not None else []
        receding = args.receding_sizes if args.receding_sizes is not None else [150]
    else:
        sizes = args.sizes if args.sizes is not None else [1000, 10000]
        naive = args.naive_sizes if args.naive_sizes is not None else []
        clar = args.clarabel_sizes if args.clarabel_sizes is not None else [1000]
        pdev = 100_000 if args.partition_devices is None else args.partition_devices
        psize = args.partition_size or 25_000
        aggs = args.aggregated_sizes if args.aggregated_sizes is not None else [10_000, 100_000]
        replan = args.replan_sizes if args.replan_sizes is not None else [1000, 10000]
        clar_re = (args.clarabel_replan_sizes if args.clarabel_replan_sizes is not None
                   else [1000, 10000])
        receding = args.receding_sizes if args.receding_sizes is not None else [1000]
    t_all = time.perf_counter()
    results = {"mode": "quick" if args.quick else "full", "eps": args.eps,
               "replan_eps": args.replan_eps,
               "polishing": args.polish, "intervals": n,
               "sizes": []}
    for s in sizes:
        log(f"fleet of {s} mixed devices x {n} intervals")
        results["sizes"].append(bench_size(s, n, args.eps, s in naive, s in clar, args.polish,
                                           args.group_size, naive_timeout_s=args.naive_timeout,
                                           replan_eps=args.replan_eps if s in replan else 0.0,
                                           clarabel_replan=s in clar_re,
                                           cvx=args.cvxpy_sizes is None or s in args.cvxpy_sizes))
    results["receding"] = []
    for s in receding:
        log(f"receding-horizon re-plans of {s} mixed devices through the call")
        results["receding"].append(bench_receding(s, n, args.eps, s in naive,
                                                  args.naive_timeout,
                                                  time_limit_s=args.replan_time_limit,
                                                  window=args.receding_window))
    results["aggregated"] = []
    for s in aggs:
        log(f"catalogue fleet of {s} devices, exact aggregation")
        results["aggregated"].append(bench_aggregated(s, n, args.eps))
    if pdev:
        cat = args.partition_fleet == "catalogue"
        log(f"partitioned Dask solve: {pdev} devices ({args.partition_fleet}), partitions of {psize}")
        results["partitioned"] = bench_partitioned(pdev, n, psize, args.eps, args.admm_iter, cat,
                                                   fixed_rho=not args.skip_fixed_rho)
    results["total_s"] = round(time.perf_counter() - t_all, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
