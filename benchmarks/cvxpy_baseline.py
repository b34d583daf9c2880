"""The scheduler benchmark's baselines in cvxpy (imported by ``bench_scheduler.py``).

* :class:`CvxpyModel`, the baseline: what a competent cvxpy user writes for our QP. The same
  formulation (our per-unit device models and partial-sum fleet rows: the very ``P`` and ``A``
  of :class:`vpp.scheduler.DispatchModel`), everything that changes between solves a
  ``cp.Parameter`` (the linear cost and the row bounds), the problem DPP-compliant so that a
  re-solve re-uses the compiled problem, OSQP with the same tolerance and settings, warm start.
* :func:`naive_cvxpy`, a labelled extra: the problem rebuilt from scratch on every re-plan,
  fleet rows summing the devices directly (no partial sums), no parameters, no warm start.
  Its set-up is pathological at 10,000 devices (docs/scheduler.md); it is kept only to show
  what the formulation and re-use are worth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from vpp.scheduler import DispatchModel, FleetDevice, HorizonData

#: the market interval both benchmarks plan on (minutes; Hunan's programme settles 15)
MINUTES = 15

#: a row whose bounds are this close is an equality
EQ_TOL = 1e-12


@dataclass(frozen=True)
class CvxpySolve:
    """One solve through cvxpy: wall time (parameter update, cvxpy's re-use of the compiled
    problem, OSQP), OSQP's own iterations and status, the objective in model units."""

    wall_s: float
    iterations: int
    status: str
    objective: float


class CvxpyModel:
    """Our QP ``min 1/2 x'Px + q'x, lo <= Ax <= hi`` in cvxpy, built once, what changes
    between the solves compared here a parameter: the price (one value per interval), on which
    ``q = q0 + Qp @ price`` depends affinely. The row bounds do not change between those solves
    and are constants: cvxpy 1.9's QP path densifies an (objective variables x all parameter
    entries) matrix when it compiles (``coeff_extractor.extract_quadratic_coeffs``: "TODO keep
    sparse"), so parametrising the ~10^5 bounds as well runs out of memory at 150 devices
    (58.7 GiB asked for); a competent user parametrises only what changes."""

    def __init__(self, P: sp.spmatrix, A: sp.spmatrix, lo: np.ndarray, hi: np.ndarray,
                 q0: np.ndarray, qp: sp.spmatrix) -> None:
        t0 = time.perf_counter()
        n = P.shape[0]
        pd = P.diagonal()
        self.x = cp.Variable(n)
        self.price = cp.Parameter(qp.shape[1])
        diagonal = sp.csr_matrix(P - sp.diags(pd)).count_nonzero() == 0
        quad = (0.5 * cp.sum(cp.multiply(pd, cp.square(self.x))) if diagonal
                else 0.5 * cp.quad_form(self.x, cp.psd_wrap(sp.csc_matrix(P))))
        eq = np.isfinite(lo) & np.isfinite(hi) & (hi - lo <= EQ_TOL)
        up, dn = np.isfinite(hi) & ~eq, np.isfinite(lo) & ~eq
        a = sp.csr_matrix(A)
        cons: list[Any] = []
        if eq.any():
            cons.append(a[eq] @ self.x == hi[eq])
        if up.any():
            cons.append(a[up] @ self.x <= hi[up])
        if dn.any():
            cons.append(a[dn] @ self.x >= lo[dn])
        cost = q0 @ self.x + self.price @ (sp.csr_matrix(qp.T) @ self.x)
        self.problem = cp.Problem(cp.Minimize(quad + cost), cons)
        if not self.problem.is_dpp():
            raise RuntimeError("the cvxpy baseline is not DPP: every re-solve would recompile")
        self.construct_s = time.perf_counter() - t0

    def solve(self, price: np.ndarray, *, eps: float, max_iter: int) -> CvxpySolve:
        """Set the price and solve, warm-started from the previous solve (the first one
        compiles the problem and sets OSQP up: its wall time is the set-up)."""
        self.price.value = price
        t0 = time.perf_counter()
        self.problem.solve(solver=cp.OSQP, warm_start=True, eps_abs=eps, eps_rel=eps,
                           max_iter=max_iter, polishing=False, eps_prim_inf=1e-6,
                           eps_dual_inf=1e-6, verbose=False)
        wall = time.perf_counter() - t0
        stats = self.problem.solver_stats
        return CvxpySolve(wall, int(stats.num_iters or 0), str(self.problem.status),
                          float(self.problem.value))


def price_map(model: DispatchModel, devs: list[FleetDevice], data: HorizonData
              ) -> tuple[np.ndarray, sp.csr_matrix]:
    """``q = q0 + Qp @ price`` of ``model``'s QP, read off ``vectors`` at zero and unit prices
    (the map a cvxpy user writes down directly as price times power; read here, not timed)."""
    n = len(data.price_yuan_per_kwh)

    def q_at(price: np.ndarray) -> np.ndarray:
        return model.vectors(devs, replace(data, price_yuan_per_kwh=price))[0]

    q0 = q_at(np.zeros(n))
    cols = [sp.csr_matrix(q_at(np.eye(n)[t]) - q0).T for t in range(n)]
    qp = sp.csr_matrix(sp.hstack(cols))
    qp.eliminate_zeros()
    check = q0 + qp @ np.asarray(data.price_yuan_per_kwh, dtype=float)
    if not np.allclose(check, q_at(np.asarray(data.price_yuan_per_kwh, dtype=float)),
                       rtol=1e-9, atol=1e-9):
        raise RuntimeError("the QP's cost is not affine in the price: no price parameter")
    return q0, qp


def naive_cvxpy(devs: list[FleetDevice], data: HorizonData, n: int,
                eps: float) -> tuple[float, float]:
    """The labelled extra (module docstring): build the QP from the device equations (our
    per-unit device models, fleet rows summing the devices directly), hand it to a fresh cvxpy
    problem and solve it with OSQP at the same ``eps`` and settings (no polishing). Returns
    (wall s, objective in model units)."""
    t0 = time.perf_counter()
    model = DispatchModel(devs, n, group_size=0, interval_minutes=MINUTES)
    q, lo, hi, _ = model.vectors(devs, data)
    x = cp.Variable(model.nx)
    pd = model.P.diagonal()
    A = model.A.tocsr()
    eq = np.isfinite(lo) & np.isfinite(hi) & (hi - lo <= EQ_TOL)
    up = np.isfinite(hi) & ~eq
    dn = np.isfinite(lo) & ~eq
    cons = [A[eq] @ x == lo[eq], A[up] @ x <= hi[up], A[dn] @ x >= lo[dn]]
    obj = cp.Minimize(0.5 * cp.sum(cp.multiply(pd, cp.square(x))) + q @ x)
    prob = cp.Problem(obj, cons)
    prob.solve(solver=cp.OSQP, eps_abs=eps, eps_rel=eps, max_iter=20000, warm_start=False,
               polishing=False)
    return time.perf_counter() - t0, float(prob.value)


def against_ours(model: DispatchModel, devs: list[FleetDevice], data: HorizonData,
                 data2: HorizonData, ours_first_s: float, ours_resolve_s: float,
                 ours_iterations: int, ours_objective: float) -> dict[str, Any]:
    """The baseline on ``model``'s own QP: set up and first solve at ``data`` (our matrix
    build and our bound vectors counted on its side too: it needs the same), then the warm
    re-solve at ``data2`` (a new price, the same bounds); ratios cvxpy / ours (> 1: ours is
    faster) and the objective gap."""
    o = model.options
    q0, qp = price_map(model, devs, data)
    t0 = time.perf_counter()
    _, lo, hi, _ = model.vectors(devs, data)
    cm = CvxpyModel(model.P, model.A, lo, hi, q0, qp)
    first = cm.solve(np.asarray(data.price_yuan_per_kwh, dtype=float), eps=o.eps,
                     max_iter=o.max_iter)
    setup_s = model.build_time_s + time.perf_counter() - t0
    _, lo2, hi2, _ = model.vectors(devs, data2)
    if not (np.array_equal(lo, lo2) and np.array_equal(hi, hi2)):
        raise RuntimeError("the re-solve changes the bounds: not a price-only re-solve")
    re = cm.solve(np.asarray(data2.price_yuan_per_kwh, dtype=float), eps=o.eps,
                  max_iter=o.max_iter)
    gap = abs(re.objective - ours_objective) / max(abs(ours_objective), 1e-9)
    return {"construct_s": round(cm.construct_s, 3), "first_solve_s": round(first.wall_s, 3),
            "first_iterations": first.iterations, "setup_and_first_s": round(setup_s, 3),
            "resolve_s": round(re.wall_s, 3), "resolve_iterations": re.iterations,
            "resolve_status": re.status,
            "ratio_setup": round(setup_s / ours_first_s, 2),
            "ratio_resolve": round(re.wall_s / ours_resolve_s, 2),
            "ratio_resolve_iterations": round(re.iterations / max(ours_iterations, 1), 2),
            "objective_gap_to_ours": float(f"{gap:.3e}")}
