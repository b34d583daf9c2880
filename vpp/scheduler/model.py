"""The fleet QP: assembled once per fleet structure, re-solved with OSQP ``update`` + warm start.

Variables: every block's local variables (see the device-model modules), then, per interval,
the slack ``sigma_t`` below the reduction's floor and ``omega_t`` above its ceiling (per unit
``kappa * S`` of the fleet's total rated power ``S``). Rows: every block's rows, then

    band   lo_t <= reduction_t / S + kappa (sigma_t - omega_t) <= hi_t   (fleet row)
    sigma_t >= 0, omega_t >= 0  (each 0 where its side is unbounded), with ``reduction_t = sum_i baseline_i,t - power_i,t``; bounds and slack costs from the band of
:mod:`vpp.scheduler.call_rows` by :mod:`vpp.scheduler.fleet_rows` (either direction).
Objective (yuan, over ``dt * S / N``: one device's terms of order one): energy at the
time-of-use price, every block's penalties, the slacks at their prices. Only ``q, l, u`` change
between solves (``P``'s values too in the partitions' exchange form): nothing is rebuilt. Call
:meth:`DispatchModel.solve` in an executor from asyncio code; one model is not thread-safe.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import osqp
import scipy.sparse as sp

from vpp.errors import ValidationError
from vpp.scheduler import battery, ev, pv, shed, v2g
from vpp.scheduler.block import Block, Context
from vpp.scheduler.call_rows import band_warnings, call_bounds, shortfall_kw, slack_curvature
from vpp.scheduler.fleet_rows import fleet_row_vectors
from vpp.scheduler.inputs import FleetDevice, HorizonData, Weights, validate, validate_device
from vpp.scheduler.kinds import SOC_BLOCKS, build_block, group_key
from vpp.scheduler.plan import Binding, SolvedPlan
from vpp.scheduler.reference import as_osqp_result, solve_clarabel

_TINY = 1e-9


def signature(devices: Sequence[FleetDevice]) -> tuple:
    """What fixes the QP's structure and matrix values (state and data do not)."""
    return tuple(
        (d.device_id, d.kind, d.rated_power_kw, d.min_setpoint_kw, d.max_setpoint_kw, d.params,
         d.preference_weight)
        for d in devices
    )


@dataclass(frozen=True)
class SolverOptions:
    """OSQP settings: ``eps`` for both absolute and relative tolerance; ``polishing`` refines
    the active set after convergence (exact to ~1e-9 when it succeeds, at the cost of one more
    factorisation)."""

    eps: float = 1e-4
    max_iter: int = 4000
    polishing: bool = False
    time_limit_s: float = 0.0  # 0 = none
    fallback: bool = True  # re-solve with Clarabel when OSQP does not converge


#: Fleets of at least this many devices get partial-sum fleet rows by default.
AUTO_SPLIT_DEVICES = 2000


def auto_group_size(n_devices: int) -> int:
    """Default ``group_size``: 0 (fleet rows sum the devices directly) below
    :data:`AUTO_SPLIT_DEVICES`, else about sqrt(N) devices per partial sum (at least 50), which
    keeps both the partial-sum rows and the fleet rows short (~2 sqrt(N) entries)."""
    if n_devices < AUTO_SPLIT_DEVICES:
        return 0
    return max(50, int(round(np.sqrt(n_devices))))


class DispatchModel:
    """One fleet's QP. Build once; :meth:`solve` as often as the data change.

    ``group_size``: ``None`` chooses :func:`auto_group_size`; 0 never splits the fleet rows;
    k > 0 sums the fleet rows through partial sums of k devices (same optimum)."""

    def __init__(self, devices: Sequence[FleetDevice], n_intervals: int, *,
                 interval_minutes: int, weights: Weights | None = None,
                 options: SolverOptions | None = None, exchange: bool = False,
                 group_size: int | None = None) -> None:
        t0 = time.perf_counter()
        if not devices:
            raise ValidationError("the fleet is empty")
        if n_intervals < 2:
            raise ValidationError("the horizon needs at least 2 intervals")
        for d in devices:
            validate_device(d, n_intervals)
        self.n = n_intervals
        self.interval_minutes = interval_minutes
        self.dt_h = interval_minutes / 60.0
        self.weights = weights or Weights()
        self.options = options or SolverOptions()
        self.exchange = exchange
        self.group_size = group_size
        self.signature = signature(devices)
        self.device_ids = np.array([d.device_id for d in devices], dtype=np.int64)
        self.rated_kw = np.array([d.rated_power_kw for d in devices])
        self.min_kw = np.array([d.min_setpoint_kw for d in devices])
        self.max_kw = np.array([d.max_setpoint_kw for d in devices])
        self.total_rated_kw = float(self.rated_kw.sum())
        self.norm = self.dt_h * self.total_rated_kw / len(devices)
        groups: dict[tuple, list[int]] = {}
        for i, d in enumerate(devices):
            groups.setdefault(group_key(d, n_intervals, self.dt_h), []).append(i)
        self.blocks: list[Block] = []
        for key, idx in sorted(groups.items(), key=lambda kv: str(kv[0])):
            members = np.array(idx, dtype=np.int64)
            self.blocks.append(
                build_block(key, members, [devices[i] for i in idx], n_intervals, self.dt_h,
                             self.weights)
            )
        self._assemble()
        self._solver: osqp.OSQP | None = None
        self.build_time_s = time.perf_counter() - t0
        self.setup_time_s = 0.0

    # -- structure ------------------------------------------------------------------------
    def _assemble(self) -> None:
        n, S = self.n, self.total_rated_kw
        voff, roff = 0, 0
        self.var_off, self.row_off = [], []
        rows, cols, vals, pdiag = [], [], [], []
        fam_names: list[str] = []
        fam_code, row_dev, row_t = [], [], []
        for b in self.blocks:
            self.var_off.append(voff)
            self.row_off.append(roff)
            j = np.arange(b.m)[:, None]
            rows.append((roff + j * b.nr + b.rows[None, :]).ravel())
            cols.append((voff + j * b.nv + b.cols[None, :]).ravel())
            vals.append(b.vals.ravel())
            pdiag.append((b.p_diag * (b.rated_kw / S * len(self.rated_kw))[:, None]).ravel())
            codes = []
            for f in b.family:
                if f not in fam_names:
                    fam_names.append(f)
                codes.append(fam_names.index(f))
            fam_code.append(np.tile(np.array(codes, dtype=np.int32), b.m))
            row_dev.append(np.repeat(b.members.astype(np.int32), b.nr))
            row_t.append(np.tile(b.row_t.astype(np.int32), b.m))
            voff += b.m * b.nv
            roff += b.m * b.nr
        self.n_dev_vars = voff
        # Fleet rows sum ~2 entries per device; at thousands of devices such rows slow OSQP's
        # AMD ordering badly (just under its dense-row threshold). Large fleets therefore route
        # them through partial sums y_{g,t} over groups of ``group_size`` devices. y_g is per
        # unit of its group's rating S_g (a virtual device: the fleet row sees S_g/S * y_g,
        # as it sees R_i/S * x_i unsplit), and the partial-sum row is written in units of the
        # group's mean device rating S_g/m_g, so that its device entries are of order one like
        # the devices' own rows:
        #   m_g * y_{g,t} - sign * sum_{i in g} (R_i m_g/S_g) * power map of i = 0
        # (scaled in fleet units instead, the rows left OSQP's iterations stalling and the
        # call missed at eps 1e-4 on 10,000 devices: docs/scheduler.md).
        N = len(self.rated_kw)
        gs = auto_group_size(N) if self.group_size is None else self.group_size
        split = 0 < gs < N
        self.group_size = gs if split else 0
        gs = gs if split else N
        G = (N + gs - 1) // gs
        t = np.arange(n)
        sign = 1.0 if self.exchange else -1.0
        ny = G * n if split else 0
        y0 = voff
        gidx, count = [], 0
        for b in self.blocks:
            gidx.append((count + np.arange(b.m)) // gs)
            count += b.m
        g_rated = np.zeros(G)
        for b, g in zip(self.blocks, gidx, strict=True):
            np.add.at(g_rated, g, b.rated_kw)
        g_count = np.bincount(np.concatenate(gidx), minlength=G).astype(float)
        # per device: coefficient of its per-unit power in its row (partial sum or fleet row)
        coef = g_count / g_rated if split else np.full(G, 1.0 / S)
        for b, vo, g in zip(self.blocks, self.var_off, gidx, strict=True):
            j = np.arange(b.m)[:, None]
            rows.append((roff + g[:, None] * n + b.power_t[None, :]).ravel())
            cols.append((vo + j * b.nv + b.power_var[None, :]).ravel())
            vals.append((sign * (coef[g] * b.rated_kw)[:, None] * b.power_coef[None, :]).ravel())
        self.ps_vars, self.ps_rows = slice(y0, y0 + ny), slice(roff, roff + ny)
        if split:
            gt = (np.arange(G)[:, None] * n + t[None, :]).ravel()
            rows.append(roff + gt)
            cols.append(y0 + gt)
            vals.append(-np.repeat(g_count, n))
            fam_names.append("fleet.partial_sum")
            fam_code.append(np.full(ny, fam_names.index("fleet.partial_sum"), dtype=np.int32))
            row_dev.append(np.full(ny, -1, dtype=np.int32))
            row_t.append(np.tile(t, G).astype(np.int32))
            voff += ny
            roff += ny
        self.n_dev_rows = roff
        # Extra variables (n): shortfall sigma (target form) or partition reduction z
        # (exchange form). Extra rows (n): the fleet row, then (target form) sigma's bounds.
        x0, c0, h0 = voff, roff, roff + n
        if split:
            rows.append(c0 + np.tile(t, G))
            cols.append(y0 + gt)
            vals.append(np.repeat(g_rated / S, n))
        # sigma in units of kappa * S, kappa chosen so that its cost is of order one (OSQP
        # scales the cost by its largest entry: a 100 yuan/kWh penalty would drown the rest).
        self.kappa = 1.0 if self.exchange else self.sigma_cost / (
            self.weights.shortfall_yuan_per_kwh * N)
        rows += [c0 + t]
        cols += [x0 + t]
        vals += [np.full(n, self.kappa)]
        fams = ["fleet.reduction"]
        n_extra = 1
        if not self.exchange:  # sigma below the floor, omega above the ceiling (call_rows)
            n_extra = 2
            rows += [c0 + t, h0 + t, h0 + n + t]
            cols += [x0 + n + t, x0 + t, x0 + n + t]
            vals += [np.full(n, -self.kappa), np.ones(n), np.ones(n)]
            fams += ["fleet.shortfall", "fleet.over_ceiling"]
        for f in fams:
            fam_names.append(f)
            fam_code.append(np.full(n, fam_names.index(f), dtype=np.int32))
            row_dev.append(np.full(n, -1, dtype=np.int32))
            row_t.append(t.astype(np.int32))
        self.nx, self.nc = voff + n * n_extra, roff + n * len(fams)
        self.extra_slice = slice(x0, x0 + n)
        self.over_slice = slice(x0 + n, x0 + n * n_extra)
        self.fleet_rows = slice(c0, c0 + n)
        A = sp.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(self.nc, self.nx),
        )
        A.sum_duplicates()
        self.A = A
        quad = 0.0 if self.exchange else slack_curvature(self.kappa, N)
        pd = np.concatenate(pdiag + [np.full(ny, _TINY), np.full(n * n_extra, max(quad, _TINY))])
        self.P = sp.csc_matrix((pd, (np.arange(self.nx), np.arange(self.nx))),
                               shape=(self.nx, self.nx))
        assert self.P.nnz == self.nx
        self.P_base = self.P.data.copy()
        self.fam_names = fam_names
        self.row_family = np.concatenate(fam_code)
        self.row_device = np.concatenate(row_dev)
        self.row_interval = np.concatenate(row_t)
        # per-block maps from local vars to power per interval
        self._pmaps = [
            sp.csr_matrix((b.power_coef, (b.power_var, b.power_t)), shape=(b.nv, n))
            for b in self.blocks
        ]

    @property
    def nnz(self) -> int:
        return int(self.A.nnz + self.P.nnz)

    def vectors(self, devices: Sequence[FleetDevice], data: HorizonData,
                direction_sign: float | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``q, l, u`` of the QP and the constant power (kW, devices x intervals);
        ``direction_sign``: the call's (default), given where the data carry no call."""
        n, S, N = self.n, self.total_rated_kw, len(self.rated_kw)
        base = np.asarray(data.baseline_kw, dtype=float)
        price = np.asarray(data.price_yuan_per_kwh, dtype=float)
        q = np.empty(self.nx)
        lo = np.empty(self.nc)
        hi = np.empty(self.nc)
        q[self.ps_vars] = 0.0
        lo[self.ps_rows] = hi[self.ps_rows] = 0.0
        const = np.empty((N, n))
        call = data.call
        window = (call.start, call.end) if call and call.rebound_max_pct is not None else None
        for b, vo, ro, pm in zip(self.blocks, self.var_off, self.row_off, self._pmaps,
                                 strict=True):
            ctx = Context(n=n, dt_h=self.dt_h, now=data.now_index, baseline_kw=base[b.members],
                          devices=[devices[i] for i in b.members], weights=self.weights,
                          shed_window=window, call_first=call.first if call else None,
                          call_window=(call.start, call.end) if call else None,
                          direction_sign=direction_sign or (call.direction_sign if call
                                                            else 1.0))
            v = b.vectors(ctx)
            scale = (b.rated_kw / S * N)[:, None]
            energy = (pm @ price)[None, :]  # price of one per-unit of each local var
            q[vo : vo + b.m * b.nv] = (scale * (v.q + energy)).ravel()
            lo[ro : ro + b.m * b.nr] = v.lo.ravel()
            hi[ro : ro + b.m * b.nr] = v.hi.ravel()
            const[b.members] = v.const_kw
        c0 = self.n_dev_rows
        # fleet reduction from constants: sum (baseline - const) / S
        red0 = (base - const).sum(axis=0) / S
        if self.exchange:
            q[self.extra_slice] = 0.0
            lo[c0 : c0 + n] = hi[c0 : c0 + n] = red0
            return q, lo, hi, const
        fr = fleet_row_vectors(call_bounds(data.call, n, base.sum(axis=0), self.weights),
                               red0, S, self.kappa, N)
        q[self.extra_slice], q[self.over_slice] = fr.sigma_q, fr.omega_q
        lo[c0 : c0 + n], hi[c0 : c0 + n] = fr.row_lo, fr.row_hi
        lo[c0 + n : c0 + 3 * n] = 0.0
        hi[c0 + n : c0 + 2 * n], hi[c0 + 2 * n : c0 + 3 * n] = fr.sigma_hi, fr.omega_hi
        return q, lo, hi, const

    def check(self, devices: Sequence[FleetDevice], data: HorizonData) -> None:
        """Validate a request against this model's structure (raises ``ValidationError``)."""
        if len(devices) != len(self.device_ids) or signature(devices) != self.signature:
            raise ValidationError("the fleet's structure differs from the one this model was "
                                  "built for (build a new model)")
        validate(devices, data, self.n)
        if data.interval_minutes != self.interval_minutes:
            raise ValidationError(f"interval_minutes={data.interval_minutes} but the model uses "
                                  f"{self.interval_minutes}")

    def set_options(self, options: SolverOptions) -> None:
        """New solver settings without a rebuild (the same OSQP workspace, warm-started)."""
        self.options = options
        if self._solver is not None:
            o = options
            self._solver.update_settings(eps_abs=o.eps, eps_rel=o.eps, max_iter=o.max_iter,
                                         polishing=o.polishing,
                                         time_limit=o.time_limit_s if o.time_limit_s > 0
                                         else 1e10)

    def solve_raw(self, q: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                  p_data: np.ndarray | None = None):
        """Load ``q, l, u`` (and optionally new ``P`` values) and run OSQP (warm-started)."""
        o = self.options
        if self._solver is None:
            t0 = time.perf_counter()
            s = osqp.OSQP()
            if p_data is not None:
                self.P.data[:] = p_data
            extra = {"time_limit": o.time_limit_s} if o.time_limit_s > 0 else {}
            s.setup(self.P, q, self.A, lo, hi, verbose=False, eps_abs=o.eps, eps_rel=o.eps,
                    max_iter=o.max_iter, polishing=o.polishing, warm_starting=True,
                    eps_prim_inf=1e-6, eps_dual_inf=1e-6, **extra)
            self._solver = s
            self.setup_time_s = time.perf_counter() - t0
        else:
            if p_data is not None:
                self._solver.update(q=q, l=lo, u=hi, Px=p_data)
            else:
                self._solver.update(q=q, l=lo, u=hi)
        return self._solver.solve(raise_error=False)

    def solve(self, devices: Sequence[FleetDevice], data: HorizonData) -> SolvedPlan:
        """Plan ``data`` for ``devices`` (same structure as built; state may differ)."""
        self.check(devices, data)
        if self.exchange:
            raise ValidationError("this model is in exchange form: use solve_exchange")
        q, lo, hi, const = self.vectors(devices, data)
        res = self.solve_raw(q, lo, hi)
        note = None
        status = str(res.info.status)
        # With a time limit the caller asked for bounded time: OSQP's iterate at the limit
        # ("solved inaccurate" = within 10x the tolerance, or "time limit reached") is the plan.
        bounded = self.options.time_limit_s > 0 and ("time limit" in status
                                                     or "inaccurate" in status)
        if status != "solved" and not bounded and self.options.fallback:
            ref = solve_clarabel(self.P, q, self.A, lo, hi, tol=1e-7,
                                 time_limit_s=self.options.time_limit_s)
            if ref.x is not None:
                note = (f"OSQP stopped ({res.info.status}, {res.info.iter} iterations); "
                        f"plan from Clarabel ({ref.iterations} iterations)")
                res = as_osqp_result(ref, res.info.solve_time)
        plan = self.plan(devices, data, res, const)
        if note:
            plan.warnings.insert(0, note)
        return plan

    sigma_cost = 1.0

    def plan(self, devices: Sequence[FleetDevice], data: HorizonData, res,
             const: np.ndarray) -> SolvedPlan:
        """Turn an OSQP result into a :class:`SolvedPlan` (setpoints clamped to limits)."""
        status = str(res.info.status)
        warnings: list[str] = []
        x = res.x
        if x is None or not np.isfinite(x).all() or "infeasible" in status:
            if "infeasible" in status:
                raise ValidationError(
                    "the devices' own constraints cannot all be met (solver: "
                    f"{status}); check EV energy needs and terminal states of charge"
                )
            raise ValidationError(f"the solver returned no plan (status: {status})")
        if status not in ("solved",):
            warnings.append(f"solver status {status!r} after {res.info.iter} iterations: "
                            "best-effort plan")
        n, N = self.n, len(self.device_ids)
        base = np.asarray(data.baseline_kw, dtype=float)
        power = const.copy()
        soc = np.full((N, n), np.nan)
        shed_arr = np.zeros((N, n))
        owed = np.zeros((N, n))
        ev_kwh: dict[int, np.ndarray] = {}
        ev_t: dict[int, np.ndarray] = {}
        for b, vo, pm in zip(self.blocks, self.var_off, self._pmaps, strict=True):
            xb = x[vo : vo + b.m * b.nv].reshape(b.m, b.nv)
            power[b.members] += b.rated_kw[:, None] * (pm.T @ xb.T).T
            if b.name in SOC_BLOCKS:
                soc[b.members] = battery.soc_pct(b, xb)
            elif b.name == pv.BLOCK_NAME:
                pass  # curtailment is the power's rise above the (negative) baseline
            elif b.name.startswith("ev_charger"):
                per_t = ev.connector_kwh(b, xb, self.dt_h)
                for i, mi in enumerate(b.members):
                    ev_kwh[int(self.device_ids[mi])] = per_t[i].sum(axis=1)
                    ev_t[int(self.device_ids[mi])] = per_t[i]
            else:
                shed_arr[b.members] = shed.shed_kw(b, xb, n)
                if b.nv == 3 * n:
                    owed[b.members] = xb[:, 2 * n :] * b.rated_kw[:, None]
        v2g.hold_departure(devices, power, soc, data.now_index, self.dt_h)
        setp = np.clip(power, self.min_kw[:, None], self.max_kw[:, None])
        clamped = np.abs(setp - power) > 1e-6 * np.maximum(self.rated_kw[:, None], 1.0)
        reduction = (base - setp).sum(axis=0)
        tgt = data.call.target_kw(n) if data.call is not None else np.full(n, np.nan)
        sign = data.call.direction_sign if data.call is not None else 1.0
        shortfall = shortfall_kw(tgt, reduction, sign)
        price = np.asarray(data.price_yuan_per_kwh, dtype=float)
        energy_cost = float((setp * price[None, :]).sum() * self.dt_h)
        obj = float(res.info.obj_val) * self.norm + float((const * price).sum() * self.dt_h)
        plan = SolvedPlan(
            device_ids=self.device_ids.copy(), baseline_kw=base, power_kw=power,
            setpoint_kw=setp, dispatch_kw=pv.release_uncurtailed(devices, power, base, setp),
            clamped=clamped, target_kw=tgt, reduction_kw=reduction,
            shortfall_kw=shortfall, soc_pct=soc, shed_kw=shed_arr, owed_kwh=owed, ev_delivered_kwh=ev_kwh,
            energy_cost_yuan=energy_cost, objective_yuan=obj, status=status,
            iterations=int(res.info.iter),
            solve_time_s=float(res.info.solve_time) + float(getattr(res.info, "polish_time", 0.0)),
            setup_time_s=self.setup_time_s, interval_minutes=self.interval_minutes,
            warnings=warnings, ev_connector_kwh=ev_t, now_index=data.now_index,
            direction_sign=sign)
        band = call_bounds(data.call, n, base.sum(axis=0), self.weights)
        plan.warnings += band_warnings(reduction, band, 1e-3 * max(float(base.sum(0).max()), 1.0))
        if not plan.feasible:
            plan.binding = self.binding(res, shortfall > 1e-3 * np.maximum(
                np.nan_to_num(tgt), 1.0))
            plan.warnings.append(
                f"call cannot be met: shortfall {plan.shortfall_kwh:.1f} kWh, at most "
                f"{float(shortfall.max()):.1f} kW short"
            )
        return plan

    def binding(self, res, short_t: np.ndarray, tol: float = 1e-6) -> list[Binding]:
        """Constraint families with non-zero duals in the intervals that fell short (or with
        no interval, e.g. duration budgets), largest first."""
        y = res.y
        active = np.abs(y) > tol * max(float(np.abs(y).max()), 1.0)
        rt = self.row_interval
        in_t = np.where(rt >= 0, short_t[np.clip(rt, 0, self.n - 1)], True)
        sel = active & in_t & (self.row_device >= 0)
        out = []
        for code in np.unique(self.row_family[sel]):
            m = sel & (self.row_family == code)
            devs = np.unique(self.row_device[m])[:10]
            out.append(Binding(self.fam_names[code], int(m.sum()),
                               tuple(int(self.device_ids[i]) for i in devs)))
        out.sort(key=lambda b: -b.rows)
        return out

    # -- exchange form for partitioned solving ---------------------------------------------
    def solve_exchange(self, devices: Sequence[FleetDevice], data: HorizonData,
                       rho: float, center_kw: np.ndarray, price: np.ndarray,
                       direction_sign: float = 1.0):
        """Exchange form (model built with ``exchange=True``): the call is replaced by a cost on
        this partition's reduction ``Z`` (kW): ``dt * (rho/2 |Z - center|^2 - price . Z)``
        (``rho`` in yuan/kW^2/h, ``price`` in yuan/kWh). Returns (OSQP result, constant power,
        ``Z`` in kW, the partition's own cost in yuan without the exchange terms)."""
        if not self.exchange:
            raise ValidationError("solve_exchange needs a model built with exchange=True")
        q, lo, hi, const = self.vectors(devices, data, direction_sign)
        S = self.total_rated_kw
        p = self.P_base.copy()
        zi = np.arange(self.extra_slice.start, self.extra_slice.stop)
        p[zi] = max(rho * self.dt_h * S * S / self.norm, _TINY)
        q[self.extra_slice] = (-rho * np.asarray(center_kw) - np.asarray(price)) * S \
            * self.dt_h / self.norm
        if self._last_rho != rho:
            res = self.solve_raw(q, lo, hi, p)
            self._last_rho = rho
        else:
            res = self.solve_raw(q, lo, hi)
        if res.x is None or not np.isfinite(res.x).all():
            raise ValidationError(f"partition solve failed (status: {res.info.status})")
        z = res.x[self.extra_slice] * S
        dev_obj = float(res.info.obj_val) * self.norm - self.dt_h * float(
            0.5 * rho * (z**2).sum() - rho * (np.asarray(center_kw) * z).sum()
            - (np.asarray(price) * z).sum()
        ) + float((const * np.asarray(data.price_yuan_per_kwh)).sum() * self.dt_h)
        return res, const, z, dev_obj

    _last_rho: float | None = None
