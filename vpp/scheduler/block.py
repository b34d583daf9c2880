"""The shape every device model gives the assembler: a *block* of identical local structure.

A block holds ``m`` devices of one kind (and one structural variant, e.g. the number of EV
connectors). Every device has the same ``nv`` local variables and ``nr`` local constraint rows
``l <= A x <= u``; the sparsity pattern is shared and the values differ per device, so the fleet
matrix is built by tiling with index arithmetic (no Python loop over devices).

Variables are per unit of the device's rated power (powers) or of its capacity (state of charge),
which keeps the QP well scaled. A device's cost in yuan is ``R * dt * (x'Px/2 + q'x)`` with ``R``
its rated power (kW) and ``dt`` the interval (h); its power in kW is
``const_kw + R * (power map) x``. Energy cost and the fleet coupling are added by the assembler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from vpp.scheduler.inputs import FleetDevice, Weights

INF = np.inf


@dataclass(frozen=True)
class Context:
    """Data of one solve, for the members of one block (rows of ``baseline_kw`` match them)."""

    n: int
    dt_h: float
    now: int
    baseline_kw: np.ndarray
    devices: Sequence[FleetDevice]
    weights: Weights
    #: the call's window ``[start, end)`` when the plan must bring the fleet back after it
    #: (``EventCall.rebound_max_pct`` set): loads shed only inside it and recover only outside
    #: (else shedding and recovering in one interval would pay the rebound back for free)
    shed_window: tuple[int, int] | None = None
    #: the call's first interval before re-plans clipped it (:attr:`EventCall.first`)
    call_first: int | None = None
    #: the call's direction (:attr:`EventCall.direction_sign`): -1 valley filling, where the
    #: loads do not shed (vpp.scheduler.shed)
    direction_sign: float = 1.0
    #: the call's window ``[start, end)`` as this solve sees it (None: no call)
    call_window: tuple[int, int] | None = None


@dataclass
class Vectors:
    """Per-solve data of a block: linear cost, row bounds, constant power (all per device)."""

    q: np.ndarray  # (m, nv)
    lo: np.ndarray  # (m, nr)
    hi: np.ndarray  # (m, nr)
    const_kw: np.ndarray  # (m, n)


@dataclass
class Pattern:
    """Local constraint pattern, accumulated one family of rows at a time."""

    m: int
    nr: int = 0
    rows: list[np.ndarray] | None = None
    cols: list[np.ndarray] | None = None
    vals: list[np.ndarray] | None = None
    family: list[str] | None = None
    row_t: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.rows, self.cols, self.vals, self.family, self.row_t = [], [], [], [], []

    def add_rows(self, family: str, count: int, t: np.ndarray | int) -> int:
        """Reserve ``count`` rows of ``family`` (``t``: interval per row or -1); return first."""
        first = self.nr
        self.nr += count
        assert self.family is not None and self.row_t is not None
        self.family.extend([family] * count)
        self.row_t.append(np.broadcast_to(np.asarray(t, dtype=np.int64), (count,)).copy())
        return first

    def entries(self, rows: ArrayLike, cols: ArrayLike, vals: ArrayLike) -> None:
        """Add entries at local ``rows``/``cols``; ``vals`` scalar, per entry, or (m, k)."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        v = np.asarray(vals, dtype=float)
        v = np.broadcast_to(v, (self.m, rows.size)) if v.ndim < 2 else v.reshape(self.m, -1)
        assert self.rows is not None and self.cols is not None and self.vals is not None
        self.rows.append(rows)
        self.cols.append(cols)
        self.vals.append(np.ascontiguousarray(v))


@dataclass
class Block:
    """A tiled group of devices of one model. Built by the device-model modules."""

    name: str
    members: np.ndarray  # fleet indices (m,)
    rated_kw: np.ndarray  # (m,)
    nv: int
    nr: int
    rows: np.ndarray  # local pattern (k,)
    cols: np.ndarray
    vals: np.ndarray  # (m, k)
    p_diag: np.ndarray  # (m, nv), yuan per (kW rating * h) at unit depth
    power_var: np.ndarray  # local var index of each power-map entry
    power_t: np.ndarray  # its interval
    power_coef: np.ndarray  # its per-unit coefficient
    family: list[str]  # per local row
    row_t: np.ndarray  # per local row: interval or -1
    vectors: Callable[[Context], Vectors]

    @property
    def m(self) -> int:
        return int(self.members.size)


def finish(name: str, members: np.ndarray, rated_kw: np.ndarray, nv: int, pat: Pattern,
           p_diag: np.ndarray, power: tuple[np.ndarray, np.ndarray, np.ndarray],
           vectors: Callable[[Context], Vectors]) -> Block:
    """Freeze a pattern into a :class:`Block`."""
    assert pat.rows is not None and pat.cols is not None and pat.vals is not None
    assert pat.family is not None and pat.row_t is not None
    return Block(
        name=name, members=members, rated_kw=rated_kw, nv=nv, nr=pat.nr,
        rows=np.concatenate(pat.rows), cols=np.concatenate(pat.cols),
        vals=np.concatenate(pat.vals, axis=1), p_diag=p_diag,
        power_var=power[0], power_t=power[1], power_coef=power[2],
        family=list(pat.family), row_t=np.concatenate(pat.row_t), vectors=vectors,
    )


def attr(devices: Sequence[FleetDevice], name: str) -> np.ndarray:
    """One attribute of every device (or of its params) as a float array."""
    out = np.empty(len(devices))
    for i, d in enumerate(devices):
        out[i] = getattr(d, name) if hasattr(d, name) else getattr(d.params, name)
    return out


def live_mask(n: int, now: int) -> np.ndarray:
    """Intervals that may still change: ``t >= now``."""
    return np.arange(n) >= now
