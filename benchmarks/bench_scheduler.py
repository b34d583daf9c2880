"""Scheduler benchmark: build once, warm re-solve, overhead, naive cvxpy, Clarabel, Dask.

For mixed fleets (40 % batteries, 30 % EV chargers, 15 % buildings, 15 % industrial loads, every
device with its own random state: nothing to aggregate) over 96 intervals of 15 minutes:

- first build (assembly + OSQP setup) and cold solve; warm re-solve after a price change;
- (a) our end-to-end re-solve / OSQP's own solve time inside it (target <= 1.2);
- (b) a naive cvxpy model rebuilt and solved from scratch for the same data / our warm re-solve
  (target >= 10x), measured at the sizes in ``--naive-sizes`` only;
- (c) relative objective gap against Clarabel (interior point, tol 1e-8) on the same QP
  (target < 1e-3);
- a partitioned solve on Dask (exchange ADMM, LocalCluster) for ``--partition-devices`` devices:
  wall time and gap to the Lagrangian bound (sum of partition bounds).

Ratios are measured in the same run. Ends with one JSON line. ``--quick`` finishes in < 60 s.
Run: ``uv run python benchmarks/bench_scheduler.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from vpp.scheduler import DispatchModel, EventCall, HorizonData, SolverOptions
from vpp.scheduler.aggregate import aggregate, disaggregate
from vpp.scheduler.reference import solve_clarabel
from vpp.scheduler.synthetic import catalog_fleet, mixed_fleet, tou_price


def log(msg: str) -> None:
    print(msg, flush=True)


def call_for(base: np.ndarray, n: int) -> EventCall:
    s, e = int(n * 0.75), int(n * 0.75) + 8  # 18:00-20:00 for n=96
    return EventCall(s, e, round(0.10 * float(base[:, s:e].sum(axis=0).mean()), 1))


def naive_cvxpy(model: DispatchModel, q, lo, hi, eps: float) -> tuple[float, float]:
    """Build the same QP as a fresh cvxpy problem and solve it with OSQP (what a straightforward
    implementation does on every re-plan). Returns (wall s, objective in model units)."""
    import cvxpy as cp

    t0 = time.perf_counter()
    x = cp.Variable(model.nx)
    pd = model.P.diagonal()
    A = model.A.tocsr()
    eq = np.isfinite(lo) & np.isfinite(hi) & (hi - lo <= 1e-12)
    up = np.isfinite(hi) & ~eq
    dn = np.isfinite(lo) & ~eq
    cons = [A[eq] @ x == lo[eq], A[up] @ x <= hi[up], A[dn] @ x >= lo[dn]]
    obj = cp.Minimize(0.5 * cp.sum(cp.multiply(pd, cp.square(x))) + q @ x)
    prob = cp.Problem(obj, cons)
    prob.solve(solver=cp.OSQP, eps_abs=eps, eps_rel=eps, max_iter=20000, warm_start=False)
    return time.perf_counter() - t0, float(prob.value)


def bench_size(n_dev: int, n: int, eps: float, naive: bool, clarabel: bool, polish: bool,
               group_size: int = 0, seed: int = 0) -> dict:
    devs, base = mixed_fleet(n_dev, n, seed=seed)
    price = tou_price(n)
    data = HorizonData(base, price, call_for(base, n))
    t0 = time.perf_counter()
    model = DispatchModel(devs, n, options=SolverOptions(eps=eps, polishing=polish),
                          group_size=group_size)
    first = model.solve(devs, data)
    first_s = time.perf_counter() - t0
    out = {
        "devices": n_dev, "group_size": group_size, "variables": model.nx,
        "constraints": model.nc, "nnz": model.nnz,
        "build_s": round(model.build_time_s, 3), "setup_s": round(model.setup_time_s, 3),
        "first_solve_s": round(first_s, 3), "first_iterations": first.iterations,
        "first_status": first.status,
    }
    log(f"  N={n_dev}: build {model.build_time_s:.2f} s, OSQP setup {model.setup_time_s:.2f} s, "
        f"first plan {first_s:.2f} s ({first.iterations} it, {first.status})")
    rng = np.random.default_rng(seed + 1)
    data2 = HorizonData(base, price * (1 + 0.05 * rng.standard_normal(n)), data.call)
    t0 = time.perf_counter()
    plan = model.solve(devs, data2)
    warm_s = time.perf_counter() - t0
    bare_s = plan.solve_time_s
    out |= {"warm_resolve_s": round(warm_s, 3), "warm_iterations": plan.iterations,
            "warm_status": plan.status, "bare_osqp_solve_s": round(bare_s, 3),
            "ratio_a_overhead": round(warm_s / bare_s, 3) if bare_s > 0 else None,
            "feasible": plan.feasible}
    log(f"  N={n_dev}: warm re-solve {warm_s:.2f} s ({plan.iterations} it, {plan.status}); "
        f"bare OSQP {bare_s:.2f} s -> (a) overhead {warm_s / bare_s:.3f}")
    q, lo, hi, _ = model.vectors(devs, data2)
    ours_obj = float(model._solver.solve(raise_error=False).info.obj_val)
    if naive:
        naive_s, naive_obj = naive_cvxpy(model, q, lo, hi, eps)
        out |= {"naive_cvxpy_s": round(naive_s, 3), "ratio_b_speedup": round(naive_s / warm_s, 2)}
        log(f"  N={n_dev}: naive cvxpy rebuild+solve {naive_s:.2f} s -> (b) {naive_s / warm_s:.1f}x"
            f" (objective {naive_obj:.6g} vs ours {ours_obj:.6g})")
    if clarabel:
        ref = solve_clarabel(model.P, q, model.A, lo, hi, tol=1e-8)
        gap = abs(ours_obj - ref.obj_val) / max(abs(ref.obj_val), 1e-9)
        out |= {"clarabel_s": round(ref.solve_time_s, 3), "clarabel_status": ref.status,
                "ratio_c_objective_gap": float(f"{gap:.3e}")}
        log(f"  N={n_dev}: Clarabel {ref.solve_time_s:.2f} s ({ref.status}) -> (c) gap {gap:.2e}")
    return out


def bench_aggregated(n_dev: int, n: int, eps: float, seed: int = 0) -> dict:
    """Catalogue fleet (devices repeat per unit): exact aggregation, solve, disaggregation."""
    devs, base = catalog_fleet(n_dev, n, seed=seed)
    price = tou_price(n)
    call = call_for(base, n)
    t0 = time.perf_counter()
    agg = aggregate(devs, base)
    agg_s = time.perf_counter() - t0
    model = DispatchModel(agg.devices, n, options=SolverOptions(eps=eps))
    vplan = model.solve(agg.devices, HorizonData(agg.baseline_kw, price, call))
    plan = disaggregate(vplan, agg, devs, base)
    first_s = time.perf_counter() - t0
    log(f"  catalogue N={n_dev}: {len(agg.devices)} virtual devices (aggregation {agg_s:.2f} s); "
        f"first plan {first_s:.2f} s, feasible={plan.feasible}")
    price2 = price * (1 + 0.05 * np.random.default_rng(seed + 1).standard_normal(n))
    t0 = time.perf_counter()
    agg = aggregate(devs, base)  # re-aggregated on every re-plan: state may have changed
    data2 = HorizonData(agg.baseline_kw, price2, call)
    vplan = model.solve(agg.devices, data2)
    plan = disaggregate(vplan, agg, devs, base)
    warm_s = time.perf_counter() - t0
    q, lo, hi, _ = model.vectors(agg.devices, data2)
    ours = float(model._solver.solve(raise_error=False).info.obj_val)
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
                      catalogue: bool) -> dict:
    from distributed import Client, LocalCluster

    from vpp.scheduler.partition import chunk, solve_partitioned

    devs, base = (catalog_fleet if catalogue else mixed_fleet)(n_dev, n, seed=7)
    data = HorizonData(base, tou_price(n), call_for(base, n))
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        res = solve_partitioned(
            client, devs, data, chunk(devs, size), options=SolverOptions(eps=eps, fallback=False),
            max_iter=max_iter, aggregate=catalogue,
            progress=lambda i, rp, rd: log(f"    ADMM {i}: primal {rp:.2e} dual {rd:.2e}")
            if i % 10 == 0 else None,
        )
    log(f"  partitioned N={n_dev} in {res.partitions} partitions: {res.wall_time_s:.1f} s, "
        f"{res.iterations} ADMM iterations (converged={res.converged}), gap to bound "
        f"{res.gap:.2e}, shortfall {res.shortfall_kw.sum() * 0.25:.1f} kWh")
    return {"devices": n_dev, "fleet": "catalogue, aggregated" if catalogue else "mixed",
            "qp_devices": res.qp_devices,
            "partitions": res.partitions, "wall_s": round(res.wall_time_s, 2),
            "iterations": res.iterations, "converged": res.converged,
            "objective_yuan": round(res.objective_yuan, 2),
            "lower_bound_yuan": round(res.lower_bound_yuan, 2), "gap": float(f"{res.gap:.3e}")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="*")
    ap.add_argument("--naive-sizes", type=int, nargs="*")
    ap.add_argument("--clarabel-sizes", type=int, nargs="*")
    ap.add_argument("--partition-devices", type=int)
    ap.add_argument("--partition-size", type=int)
    ap.add_argument("--admm-iter", type=int, default=300)
    ap.add_argument("--aggregated-sizes", type=int, nargs="*")
    ap.add_argument("--partition-fleet", choices=["catalogue", "mixed"], default="catalogue")
    ap.add_argument("--eps", type=float, default=1e-4)
    ap.add_argument("--polish", action="store_true", help="OSQP solution polishing")
    ap.add_argument("--group-size", type=int, default=0,
                    help="split fleet rows through partial sums of this many devices (0: off)")
    args = ap.parse_args()
    n = 96
    if args.quick:
        sizes = args.sizes if args.sizes is not None else [200]
        naive = args.naive_sizes if args.naive_sizes is not None else [200]
        clar = args.clarabel_sizes if args.clarabel_sizes is not None else [200]
        pdev = 60 if args.partition_devices is None else args.partition_devices
        psize = args.partition_size or 30
        aggs = args.aggregated_sizes if args.aggregated_sizes is not None else [1000]
    else:
        sizes = args.sizes if args.sizes is not None else [1000, 10000]
        naive = args.naive_sizes if args.naive_sizes is not None else [1000]
        clar = args.clarabel_sizes if args.clarabel_sizes is not None else [1000, 10000]
        pdev = 100_000 if args.partition_devices is None else args.partition_devices
        psize = args.partition_size or 25_000
        aggs = args.aggregated_sizes if args.aggregated_sizes is not None else [10_000, 100_000]
    t_all = time.perf_counter()
    results = {"mode": "quick" if args.quick else "full", "eps": args.eps,
               "polishing": args.polish, "intervals": n,
               "sizes": []}
    for s in sizes:
        log(f"fleet of {s} mixed devices x {n} intervals")
        results["sizes"].append(bench_size(s, n, args.eps, s in naive, s in clar, args.polish,
                                              args.group_size))
    results["aggregated"] = []
    for s in aggs:
        log(f"catalogue fleet of {s} devices, exact aggregation")
        results["aggregated"].append(bench_aggregated(s, n, args.eps))
    if pdev:
        cat = args.partition_fleet == "catalogue"
        log(f"partitioned Dask solve: {pdev} devices ({args.partition_fleet}), partitions of {psize}")
        results["partitioned"] = bench_partitioned(pdev, n, psize, args.eps, args.admm_iter, cat)
    results["total_s"] = round(time.perf_counter() - t_all, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
