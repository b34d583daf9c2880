"""Partitioned solving on Dask distributed, coordinated by exchange (sharing) ADMM.

The fleet is split into partitions (by gateway, feeder, region or simply in chunks); each lives
in one Dask **actor** that keeps its own :class:`DispatchModel` (exchange form, one persistent
OSQP workspace, warm-started). The coordinator only exchanges each partition's reduction vector
(one float per interval) and solves the fleet part in closed form (Boyd et al. 2011, sec. 7.3):

    Z_k  <- argmin f_k(Z_k) + rho/2 |Z_k - Z_k + Zbar - Wbar + u|^2         (on the workers)
    Wbar <- argmin g(K Wbar) + K rho/2 |Wbar - u - Zbar|^2,  g(W) = lambda * sum (D - W)+
    u    <- u + Zbar - Wbar

so that the partitions together meet the call. The price ``p = -rho u`` (clipped to
``[0, lambda]`` in the call window) gives a Lagrangian lower bound: each partition solved against
``p`` plus ``p . D``; the gap between the plan's objective and that bound is reported.

Stopping: the primal residual ``K |Zbar - Wbar|`` (kW) relative to the call, and the dual
residual ``rho K |Wbar - Wbar_prev|`` (yuan/kWh, the change of the coordinator's price signal)
relative to the larger of the highest tariff price and the coordinator's price, both within
``tol``. ``rho`` is balanced as the iterations go (Boyd et al. 2011, sec. 3.4.1): every
:data:`BALANCE_EVERY` iterations, if one relative residual exceeds :data:`MU` times the other,
``rho`` is multiplied or divided by :data:`TAU` and the scaled dual ``u`` rescaled so that the
price ``rho u`` is unchanged. With a fixed ``rho`` (and the dual residual in kW) a small call
(2 % of the baseline) stopped at the iteration cap, 0.6 % off the monolithic objective.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vpp.errors import ValidationError
from vpp.scheduler.aggregate import Aggregation, disaggregate
from vpp.scheduler.aggregate import aggregate as aggregate_fleet
from vpp.scheduler.call_rows import call_bounds, prox_total, shortfall_kw, violation_kw
from vpp.scheduler.inputs import FleetDevice, HorizonData, Weights, validate
from vpp.scheduler.model import DispatchModel, SolverOptions, signature
from vpp.scheduler.plan import SolvedPlan

#: Residual balancing of the coordinator's ``rho`` (see the module docstring). Every change makes
#: each partition refactor its KKT matrix once, so it is checked every few iterations only.
BALANCE_EVERY, MU, TAU = 5, 10.0, 2.0


class PartitionWorker:
    """One partition's model; runs inside a Dask actor (or in-process)."""

    def __init__(self, devices: list[FleetDevice], n: int, interval_minutes: int,
                 weights: Weights, options: SolverOptions, aggregate: bool = False) -> None:
        self.fleet = devices
        self.devices = devices
        self.n, self.interval_minutes = n, interval_minutes
        self.weights, self.options = weights, options
        self.aggregate = aggregate
        self.agg: Aggregation | None = None
        self.model: DispatchModel | None = None
        self.data: HorizonData | None = None
        self.base: np.ndarray | None = None
        self.last: tuple | None = None
        self.direction_sign = 1.0

    def set_data(self, devices: list[FleetDevice], baseline_kw: np.ndarray, price: np.ndarray,
                 now_index: int, direction_sign: float = 1.0) -> int:
        """New state (``devices``, the same ids in the same order) and data (``direction_sign``:
        the call's); returns the number of (virtual) devices in the partition's QP. The model
        is rebuilt only when the partition's structure changed (with aggregation: when the
        groups did)."""
        self.direction_sign = direction_sign
        self.fleet = devices
        self.devices = devices
        self.base = np.asarray(baseline_kw, dtype=float)
        if self.aggregate:
            self.agg = aggregate_fleet(self.fleet, self.base)
            self.devices, base = self.agg.devices, self.agg.baseline_kw
        else:
            base = self.base
        if self.model is None or self.model.signature != signature(self.devices):
            self.model = DispatchModel(self.devices, self.n, interval_minutes=self.interval_minutes,
                                       weights=self.weights, options=self.options, exchange=True)
        self.data = HorizonData(base, price, None, now_index=now_index,
                                interval_minutes=self.interval_minutes)
        return len(self.devices)

    def step(self, rho: float, center_kw: np.ndarray, price: np.ndarray
             ) -> tuple[np.ndarray, float, int]:
        assert self.data is not None and self.model is not None
        res, const, z, obj = self.model.solve_exchange(self.devices, self.data, rho, center_kw,
                                                       price, self.direction_sign)
        self.last = (res, const)
        return z, obj, int(res.info.iter)

    def plan(self) -> SolvedPlan:
        """The partition's plan of the last step, per (real) device."""
        assert self.data is not None and self.last is not None and self.model is not None
        res, const = self.last
        plan = self.model.plan(self.devices, self.data, res, const)
        if self.agg is not None and self.base is not None:
            plan = disaggregate(plan, self.agg, self.fleet, self.base)
        return plan


@dataclass
class PartitionedResult:
    """The coordinator's figures (reduction and shortfall from the exchanged ``Z``) and the
    partitions' plans merged (``plan``, per device)."""

    plan: SolvedPlan
    reduction_kw: np.ndarray
    shortfall_kw: np.ndarray
    target_kw: np.ndarray
    objective_yuan: float
    lower_bound_yuan: float
    iterations: int
    converged: bool
    wall_time_s: float
    partitions: int
    qp_devices: int = 0  # devices in the partitions' QPs (fewer than the fleet if aggregated)

    @property
    def device_ids(self) -> np.ndarray:
        return self.plan.device_ids

    @property
    def setpoint_kw(self) -> np.ndarray:
        return self.plan.setpoint_kw

    @property
    def gap(self) -> float:
        """Relative gap between the plan's objective and the Lagrangian bound."""
        return (self.objective_yuan - self.lower_bound_yuan) / max(abs(self.objective_yuan), 1.0)


def local_cluster(workers: int | None = None):
    """An in-process Dask ``LocalCluster`` for partitioned solving without a cluster address:
    ``workers`` single-threaded workers (default: one per core this process may use). One
    worker per core, not one worker of several threads, because a Dask worker runs its actors'
    methods on a single thread: partitions on one worker solve one after another. OSQP releases the GIL, so
    in-process workers solve in parallel. Its HTTP server listens on a free loopback port with
    the dashboard off: ``dashboard_address=None`` does not disable it (dask/distributed#8136),
    so several clusters on one machine fought over port 8787 and one was reachable from
    outside."""
    from distributed import LocalCluster

    # distributed logs a comm that closes under it as INFO *with a traceback* ("Batched Comm
    # Closed", distributed/batched.py); with in-process workers that happens when the cluster
    # shuts down mid-send (seen once in a season run's output). Expected, not an error: keep
    # it off the user's terminal; warnings and errors still show.
    logging.getLogger("distributed.batched").setLevel(logging.WARNING)
    n = workers if workers is not None else usable_cores()
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=False,
                        dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False})


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset), not the
    machine's count."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def place(sizes: Sequence[int], workers: Sequence[str]) -> list[str]:
    """A worker for each partition, largest partition first onto the least loaded worker (by
    devices): each worker runs its actors' solves one at a time, so the partitions must be
    spread for the workers to solve them in parallel."""
    load = dict.fromkeys(workers, 0)
    out = [""] * len(sizes)
    for k in sorted(range(len(sizes)), key=lambda k: -sizes[k]):
        w = min(workers, key=lambda a: load[a])
        out[k] = w
        load[w] += sizes[k]
    return out


def chunk(devices: Sequence[FleetDevice], size: int) -> list[list[int]]:
    """Consecutive partitions of at most ``size`` devices."""
    return [list(range(i, min(i + size, len(devices)))) for i in range(0, len(devices), size)]


class ActorPool:
    """Partition actors kept between plans (the daemon's re-plans of one fleet). A partition
    whose devices (ids, in order), horizon, weights and options are unchanged keeps its actor,
    and with it its built model and warm OSQP workspace; the coordinator restarts from the
    previous plan's rho, reductions and price. Anything else changed: new actors."""

    def __init__(self) -> None:
        self.keys: list[tuple] | None = None
        self.futures: list = []
        self.actors: list = []
        self.created = 0  # actors started so far
        self.state: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None

    def get(self, client, groups: Sequence[list[FleetDevice]], n: int, interval_minutes: int,
            weights: Weights, options: SolverOptions, aggregate: bool) -> list:
        keys = [(n, interval_minutes, weights, options, aggregate,
                 tuple(d.device_id for d in g)) for g in groups]
        if keys != self.keys:
            self.release()
            where = place([len(g) for g in groups], sorted(client.scheduler_info()["workers"]))
            self.futures = [client.submit(PartitionWorker, g, n, interval_minutes, weights,
                                          options, aggregate, actor=True, workers=[w],
                                          allow_other_workers=False)
                            for g, w in zip(groups, where, strict=True)]
            self.actors = [f.result() for f in self.futures]
            self.keys = keys
            self.created += len(groups)
        return self.actors

    def release(self) -> None:
        for f in self.futures:
            f.release()
        self.futures, self.actors, self.keys, self.state = [], [], None, None


def solve_partitioned(client, devices: Sequence[FleetDevice], data: HorizonData,
                      partitions: Sequence[Sequence[int]], *, weights: Weights | None = None,
                      options: SolverOptions | None = None, rho: float | None = None,
                      max_iter: int = 300, tol: float = 2e-3, n: int | None = None,
                      aggregate: bool = False, balance_rho: bool = True,
                      time_limit_s: float = 0.0, pool: ActorPool | None = None,
                      progress=None) -> PartitionedResult:
    """Solve ``data`` for ``devices`` split into ``partitions`` (lists of fleet indices) on the
    Dask ``client``. ``tol``: the primal residual relative to the call (or to the fleet rating
    without a call), the dual residual relative to the price scale (module docstring); ``rho``
    is the starting value (balanced as the iterations go unless ``balance_rho`` is false: the
    benchmark's baseline). ``time_limit_s`` > 0 stops the iterations once it has passed (the
    daemon's re-plans): the last iterate is the plan, labelled best-effort, and the Lagrangian
    bound is skipped (NaN). ``pool`` keeps the partitions' actors (and the coordinator's
    state) for the next plan of the same partitions; without one they are released at the
    end. ``progress(it, primal, dual)`` gets the relative residuals."""
    t0 = time.perf_counter()
    w = weights or Weights()
    opts = options or SolverOptions(fallback=False)
    n = n or int(np.asarray(data.baseline_kw).shape[1])
    validate(devices, data, n)
    seen = sorted(i for p in partitions for i in p)
    if seen != list(range(len(devices))):
        raise ValidationError("partitions must cover every device exactly once")
    base = np.asarray(data.baseline_kw, dtype=float)
    price = np.asarray(data.price_yuan_per_kwh, dtype=float)
    K = len(partitions)
    groups = [[devices[i] for i in p] for p in partitions]
    own = pool is None
    pool = pool if pool is not None else ActorPool()
    actors = pool.get(client, groups, n, data.interval_minutes, w, opts, aggregate)
    sign = data.call.direction_sign if data.call is not None else 1.0
    qp_devices = [a.set_data(g, base[list(p)], price, data.now_index, sign)
                  for a, g, p in zip(actors, groups, partitions, strict=True)]
    qp_devices = [f.result() for f in qp_devices]
    tgt = data.call.target_kw(n) if data.call is not None else np.full(n, np.nan)
    win = ~np.isnan(tgt)
    D = np.nan_to_num(tgt)
    band = call_bounds(data.call, n, base.sum(axis=0), w)
    dt = data.interval_minutes / 60.0
    scale = max(float(D.max()), 1.0) if win.any() else sum(d.rated_power_kw for d in devices)
    rho = rho if rho is not None else 2.0 * K / scale * 10.0
    price_scale = max(float(np.abs(price).max()), 1e-6)  # yuan/kWh
    Z = np.zeros((K, n))
    objs = np.zeros(K)
    Wbar = np.zeros(n)
    u = np.zeros(n)
    zero = np.zeros(n)
    if pool.state is not None:  # the previous plan of this pool's partitions: warm start
        rho, Z, Wbar, u = pool.state[0], pool.state[1].copy(), pool.state[2].copy(), \
            pool.state[3].copy()
    converged = timed_out = False
    it = 0
    for it in range(1, max_iter + 1):
        Zbar = Z.mean(axis=0)
        centers = Z - Zbar + Wbar - u
        outs = [a.step(rho, centers[k], zero) for k, a in enumerate(actors)]
        for k, f in enumerate(outs):
            Z[k], objs[k], _ = f.result()
        Zbar = Z.mean(axis=0)
        a_ = u + Zbar
        tot = K * a_
        W = prox_total(tot, band, K / rho)
        W_old = Wbar
        Wbar = W / K
        u = u + Zbar - Wbar
        r_p = K * float(np.abs(Zbar - Wbar).max()) / scale
        r_d = rho * K * float(np.abs(Wbar - W_old).max()) / max(
            price_scale, float(np.abs(rho * u).max()))
        if progress is not None:
            progress(it, r_p, r_d)
        if r_p <= tol and r_d <= tol and it > 2:
            converged = True
            break
        if 0 < time_limit_s <= time.perf_counter() - t0:
            timed_out = True
            break
        if balance_rho and it % BALANCE_EVERY == 0:
            if r_p > MU * r_d:
                rho, u = rho * TAU, u / TAU
            elif r_d > MU * r_p:
                rho, u = rho / TAU, u * TAU
    pool.state = (rho, Z.copy(), Wbar.copy(), u.copy())
    red = Z.sum(axis=0)
    short = shortfall_kw(tgt, red, sign)
    below, above = violation_kw(red, band)
    primal = float(objs.sum() + dt * (band.floor_cost_yuan_per_kwh * below).sum()
                   + dt * band.ceiling_cost_yuan_per_kwh * above.sum())
    plans = [a.plan().result() for a in actors]
    # Lagrangian bound at the coordinator's price (one more solve per partition)
    bound = float("nan")
    if not timed_out:
        # the fleet cost's conjugate: a price in [-ceiling cost, floor cost] where bounded
        p_hi = np.where(band.has_floor, band.floor_cost_yuan_per_kwh, 0.0)
        p_lo = np.where(band.has_ceiling, -band.ceiling_cost_yuan_per_kwh, 0.0)
        # (a price on the response; the partitions see it on their reduction, times sign)
        p = np.clip(-rho * u * sign, p_lo, p_hi)
        bouts = [a.step(0.0, zero, sign * p) for a in actors]
        bound = dt * float(np.where(p >= 0, p * np.nan_to_num(band.floor_kw),
                                    p * np.nan_to_num(band.ceiling_kw)).sum())
        for f in bouts:
            zk, ok, _ = f.result()
            bound += ok - dt * float((sign * p * zk).sum())
    if own:
        pool.release()
    wall = time.perf_counter() - t0
    status = "solved" if converged else "time limit reached" if timed_out else "max_iter"
    merged = merge_plans(plans, tgt, objective_yuan=primal, iterations=it, wall_time_s=wall,
                         status=status, direction_sign=sign)
    if timed_out:
        merged.warnings.insert(0, f"partitioned solve stopped at its time limit after {it} "
                                  f"ADMM iterations: best-effort plan ({K} partitions)")
    elif not converged:
        merged.warnings.insert(0, f"partitioned solve stopped after {it} ADMM iterations "
                                  f"(not converged; {K} partitions)")
    return PartitionedResult(
        plan=merged, reduction_kw=red,
        shortfall_kw=short, target_kw=tgt, objective_yuan=primal, lower_bound_yuan=bound,
        iterations=it, converged=converged, wall_time_s=wall, partitions=K,
        qp_devices=int(sum(qp_devices)),
    )


def merge_plans(plans: Sequence[SolvedPlan], target_kw: np.ndarray, *, objective_yuan: float,
                iterations: int, wall_time_s: float, status: str,
                direction_sign: float = 1.0) -> SolvedPlan:
    """One fleet plan from the partitions' plans: device arrays stacked in partition order; the
    fleet reduction and shortfall (of the response in ``direction_sign``) recomputed from the
    devices' planned power against ``target_kw`` (NaN outside the call), the objective and
    status the coordinator's."""
    first = plans[0]
    cat = {f: np.concatenate([getattr(p, f) for p in plans]) for f in (
        "device_ids", "baseline_kw", "power_kw", "setpoint_kw", "clamped", "soc_pct", "shed_kw",
        "owed_kwh")}
    red = cat["baseline_kw"].sum(axis=0) - cat["power_kw"].sum(axis=0)
    short = shortfall_kw(target_kw, red, direction_sign)
    ev_kwh: dict[int, np.ndarray] = {}
    ev_conn: dict[int, np.ndarray] = {}
    warnings: list[str] = []
    for p in plans:
        ev_kwh.update(p.ev_delivered_kwh)
        ev_conn.update(p.ev_connector_kwh)
        warnings += [w for w in p.warnings if w not in warnings]
    dispatch = (np.concatenate([p.dispatch_setpoint_kw for p in plans])
                if any(p.dispatch_kw is not None for p in plans) else None)
    return SolvedPlan(
        device_ids=cat["device_ids"], baseline_kw=cat["baseline_kw"], power_kw=cat["power_kw"],
        setpoint_kw=cat["setpoint_kw"], dispatch_kw=dispatch, clamped=cat["clamped"], soc_pct=cat["soc_pct"],
        shed_kw=cat["shed_kw"], owed_kwh=cat["owed_kwh"],
        target_kw=np.asarray(target_kw, dtype=float), reduction_kw=red,
        shortfall_kw=short, ev_delivered_kwh=ev_kwh,
        energy_cost_yuan=float(sum(p.energy_cost_yuan for p in plans)),
        objective_yuan=objective_yuan, status=status, iterations=iterations,
        solve_time_s=wall_time_s, setup_time_s=float(sum(p.setup_time_s for p in plans)),
        interval_minutes=first.interval_minutes, warnings=warnings, ev_connector_kwh=ev_conn,
        now_index=first.now_index, direction_sign=direction_sign,
    )


def owner_partitions(owners: Sequence[str], size: int) -> list[list[int]]:
    """Fleet rows packed into partitions of at most ``size`` devices, an owner's devices never
    split (an owner larger than ``size`` is a partition of its own). Owners in first-seen order."""
    by_owner: dict[str, list[int]] = {}
    for i, o in enumerate(owners):
        by_owner.setdefault(o, []).append(i)
    parts: list[list[int]] = [[]]
    for rows in by_owner.values():
        if parts[-1] and len(parts[-1]) + len(rows) > size:
            parts.append([])
        parts[-1].extend(rows)
    return [p for p in parts if p]


class PartitionedScheduler:
    """The partitioned path of the daemon and the simulator: a fleet larger than
    ``partition_size`` devices is split by owner (:func:`owner_partitions`) and solved with
    :func:`solve_partitioned` (exact aggregation inside each partition) on the Dask cluster at
    ``address`` (None: an in-process :func:`local_cluster` started at the first plan), in
    ``interval_minutes`` market intervals. Returns a
    :class:`SolvedPlan` like :class:`vpp.scheduler.service.Scheduler`. Call :meth:`close`
    at shutdown. Blocking: run it in an executor from asyncio code."""

    def __init__(self, partition_size: int, address: str | None,
                 interval_minutes: int, weights: Weights | None = None,
                 max_admm_iter: int = 300) -> None:
        self.partition_size = partition_size
        self.address = address
        self.interval_minutes = interval_minutes
        self.weights = weights
        self.max_admm_iter = max_admm_iter
        self.last: PartitionedResult | None = None
        self.pool = ActorPool()
        self._client = None
        self._cluster = None

    def applies(self, n_devices: int) -> bool:
        return n_devices > self.partition_size

    def client(self):
        if self._client is None:
            from distributed import Client

            if self.address:
                self._client = Client(self.address)
            else:
                self._cluster = local_cluster()
                self._client = Client(self._cluster)
        return self._client

    def plan(self, devices: Sequence[FleetDevice], data: HorizonData,
             options: SolverOptions | None = None,
             owners: Sequence[str] | None = None) -> SolvedPlan:
        """Plan ``data`` for ``devices``; partitions by ``owners`` (default: each device's
        ``owner``). The partitions solve at ``options.eps`` without the Clarabel fallback;
        ``options.time_limit_s`` (a re-plan's) bounds the coordinator's iterations."""
        o = options or SolverOptions()
        owners = list(owners) if owners is not None else [d.owner for d in devices]
        res = solve_partitioned(self.client(), devices, data,
                                owner_partitions(owners, self.partition_size),
                                weights=self.weights,
                                options=SolverOptions(eps=o.eps, fallback=False),
                                max_iter=self.max_admm_iter, aggregate=True,
                                time_limit_s=o.time_limit_s, pool=self.pool)
        self.last = res
        plan = res.plan
        plan.warnings.append(f"partitioned on Dask: {res.partitions} partitions, "
                             f"{res.qp_devices} QP devices, {res.iterations} ADMM iterations")
        return plan

    def close(self) -> None:
        if self._client is not None:
            self.pool.release()
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None
