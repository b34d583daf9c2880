"""An independent solver on the same QP: Clarabel (interior point).

Used as the fallback when OSQP does not converge (calls far beyond the fleet's capability make
the problem LP-like, where first-order methods crawl) and as the accuracy reference in the
benchmark. ``l <= Ax <= u`` becomes Clarabel's ``A'x + s = b``, ``s`` in a cone: equality rows in
the zero cone, finite bounds as non-negative slack rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import clarabel
import numpy as np
import scipy.sparse as sp


@dataclass
class ReferenceResult:
    x: np.ndarray | None
    y: np.ndarray | None  # duals in OSQP's convention (one per row of A, l-side negative)
    status: str
    obj_val: float
    iterations: int
    solve_time_s: float


def solve_clarabel(P: sp.csc_matrix, q: np.ndarray, A: sp.csc_matrix, lo: np.ndarray,
                   hi: np.ndarray, *, tol: float = 1e-8, time_limit_s: float = 0.0
                   ) -> ReferenceResult:
    """Solve ``min x'Px/2 + q'x  s.t.  lo <= Ax <= hi`` with Clarabel."""
    A = sp.csr_matrix(A)
    eq = np.isfinite(lo) & np.isfinite(hi) & (np.abs(hi - lo) <= 1e-12 * (1 + np.abs(lo)))
    up = np.isfinite(hi) & ~eq
    dn = np.isfinite(lo) & ~eq
    blocks = [A[eq], A[up], -A[dn]]
    rhs = [lo[eq], hi[up], -lo[dn]]
    Ac = sp.vstack(blocks, format="csc")
    b = np.concatenate(rhs)
    cones = []
    if eq.any():
        cones.append(clarabel.ZeroConeT(int(eq.sum())))
    nn = int(up.sum() + dn.sum())
    if nn:
        cones.append(clarabel.NonnegativeConeT(nn))
    st = clarabel.DefaultSettings()
    st.verbose = False
    st.tol_gap_abs = st.tol_gap_rel = tol
    st.tol_feas = tol
    if time_limit_s > 0:
        st.time_limit = time_limit_s
    solver = clarabel.DefaultSolver(sp.triu(P, format="csc"), np.asarray(q, float), Ac, b,
                                    cones, st)
    sol = solver.solve()
    status = str(sol.status)
    ok = "Solved" in status
    x = np.asarray(sol.x) if ok else None
    y = None
    if ok:
        z = np.asarray(sol.z)
        y = np.zeros(A.shape[0])
        ne, nu = int(eq.sum()), int(up.sum())
        y[eq] = -z[:ne]
        y[up] += z[ne : ne + nu]
        y[dn] -= z[ne + nu :]
    return ReferenceResult(x=x, y=y, status=status, obj_val=float(sol.obj_val),
                           iterations=int(sol.iterations), solve_time_s=float(sol.solve_time))


def as_osqp_result(ref: ReferenceResult, osqp_time_s: float) -> SimpleNamespace:
    """A Clarabel result in the shape of an OSQP one (``x``, ``y``, ``info``)."""
    info = SimpleNamespace(status="solved", iter=ref.iterations, obj_val=ref.obj_val,
                           solve_time=osqp_time_s + ref.solve_time_s)
    return SimpleNamespace(x=ref.x, y=ref.y, info=info)
