"""What a settlement accepts: the checked loads, declarations and money terms of
:func:`bidding.settlement.settle_event`, and what meter data it credits: its error and missing
readings (the "no response" rule); export past a site's own load (the programme's
``export_counts``) is :mod:`bidding.export_rule`. Pure numpy; re-exported by
:mod:`bidding.settlement`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from bidding.export_rule import credited_meter  # noqa: F401  # re-exported
from bidding.rules import Direction
from vpp.errors import ValidationError


class SettlementError(ValidationError):
    """Inputs that cannot be settled, or money that would not balance."""

    code = "settlement_invalid"


#: The "no response" rule applies only when at least this share of the event's device-intervals
#: was metered; below it the meter data itself failed (an outage of the metering, not the
#: devices' non-response) and the settlement is refused for an operator to look at.
MIN_METERED_SHARE = 0.5


def require_metered_share(missing: np.ndarray, what: str) -> float:
    """Share of metered cells in ``missing`` (bool, device-intervals of the event); raises
    :class:`SettlementError` when it is below :data:`MIN_METERED_SHARE`."""
    share = 1.0 - float(np.mean(missing)) if missing.size else 0.0
    if share < MIN_METERED_SHARE:
        raise SettlementError(
            f"missing meter data: {what}: only {share:.0%} of the event's device-intervals "
            f"were metered (at least {MIN_METERED_SHARE:.0%} needed to settle the rest as "
            f"no response)")
    return share


def fill_unmetered(metered_kw: Any, baseline_kw: Any) -> tuple[np.ndarray, np.ndarray]:
    """The "no response" rule for missing meter data: where a metering point (here, a device)
    has no reading in an interval, its metered load is taken to equal its baseline, so that
    interval counts as no response (neither paid nor credited; its share of the declaration
    still counts against it). Returns (filled kW, mask of the filled cells); cells whose
    baseline is missing too stay NaN (and :func:`settle_event` refuses them).

    ASSUMPTION: the programme files say nothing about missing meter data; this rule settles
    the metering points that were metered and marks the rest, instead of refusing the event.
    """
    meter = np.asarray(metered_kw, dtype=float).copy()
    base = np.broadcast_to(np.asarray(baseline_kw, dtype=float), meter.shape)
    gap = ~np.isfinite(meter)
    meter[gap] = base[gap]
    return meter, gap & np.isfinite(base)


def _as_matrix(a: Any, name: str, n: int, t: int) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 1 and n == 1:
        arr = arr[None, :]
    if arr.shape != (n, t):
        raise SettlementError(f"{name} has shape {arr.shape}, expected ({n}, {t})")
    return arr


def _missing(arr: np.ndarray, name: str, owner_ids: Sequence[int], index: pd.DatetimeIndex) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        i, t = np.argwhere(bad)[0]
        raise SettlementError(
            f"missing {name} data: {int(bad.sum())} interval(s), first for owner "
            f"{owner_ids[i]} at {index[t].isoformat()}"
        )


@dataclass(frozen=True)
class Loads:
    """Checked load inputs of :func:`~bidding.settlement.settle_event`; kW arrays are
    (owners, intervals)."""
    base_kw: np.ndarray
    meter_kw: np.ndarray
    in_event: np.ndarray  # bool per interval: the event window
    declared_kw: np.ndarray  # (owners, intervals): each owner's declared kW in each interval
    declared_owner_kw: np.ndarray  # per owner, as reported: its declaration, or the mean over
    # the event of a per-interval one
    site_kw: np.ndarray | None  # (owners, intervals) site import, NaN: not metered; None: none


@dataclass(frozen=True)
class Terms:
    """Checked money terms of :func:`~bidding.settlement.settle_event`."""
    price: Decimal  # yuan/kWh
    fee_pct: Decimal  # 0-100
    sign: float  # +1.0 peak shaving (response = baseline - metered), -1.0 valley filling


def _declared(owner_declared_kw: Any, n: int, t: int, mask: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """(owners x intervals kW, per-owner reported kW) of one value per owner (the same in every
    interval) or one per owner and interval (a per-interval declaration)."""
    decl = np.asarray(owner_declared_kw, dtype=float)
    if decl.ndim == 2:
        if decl.shape != (n, t):
            raise SettlementError(f"owner_declared_kw per interval has shape {decl.shape}, "
                                  f"expected ({n}, {t})")
        matrix, reported = decl, decl[:, mask].mean(axis=1)
    elif decl.shape == (n,):
        matrix, reported = np.repeat(decl[:, None], t, axis=1), decl
    else:
        raise SettlementError("owner_declared_kw needs one non-negative value per owner")
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise SettlementError("owner_declared_kw needs one non-negative value per owner"
                              + (" and interval" if decl.ndim == 2 else ""))
    if matrix[:, mask].sum() <= 0:
        raise SettlementError("declared capacity must be positive")
    return matrix, reported


def check_loads(index: pd.DatetimeIndex, owner_ids: Sequence[int], baseline_kw: Any,
                metered_kw: Any, owner_declared_kw: Any, in_event: Any,
                site_import_kw: Any = None) -> Loads:
    """Shapes, completeness and signs of the load inputs; raises :class:`SettlementError`."""
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise SettlementError("index must be a timezone-aware DatetimeIndex of interval starts")
    n, t = len(owner_ids), len(index)
    if n == 0 or t == 0:
        raise SettlementError("nothing to settle: no owners or no intervals")
    if len(set(owner_ids)) != n:
        raise SettlementError("owner ids must be unique")
    base = _as_matrix(baseline_kw, "baseline_kw", n, t)
    meter = _as_matrix(metered_kw, "metered_kw", n, t)
    _missing(base, "baseline", owner_ids, index)
    _missing(meter, "meter", owner_ids, index)
    mask = np.ones(t, dtype=bool) if in_event is None else np.asarray(in_event, dtype=bool)
    if mask.shape != (t,) or not mask.any():
        raise SettlementError("in_event must mark at least one of the intervals")
    declared, reported = _declared(owner_declared_kw, n, t, mask)
    site = None if site_import_kw is None else _as_matrix(site_import_kw, "site_import_kw", n, t)
    return Loads(base, meter, mask, declared, reported, site)


def check_terms(price_yuan_per_kwh: Decimal, price_cap_yuan_per_kwh: Decimal | None,
                fee_pct: Decimal | float, direction: str) -> Terms:
    """Price (yuan/kWh, within the cap), fee (%) and direction; raises :class:`SettlementError`."""
    price = (Decimal(str(price_yuan_per_kwh)) if isinstance(price_yuan_per_kwh, float)
             else Decimal(price_yuan_per_kwh))
    if price < 0:
        raise SettlementError(f"negative price {price} yuan/kWh")
    if price_cap_yuan_per_kwh is not None and price > price_cap_yuan_per_kwh:
        raise SettlementError(
            f"price {price} yuan/kWh is over the programme cap {price_cap_yuan_per_kwh}"
        )
    fee = Decimal(str(fee_pct)) if isinstance(fee_pct, float) else Decimal(fee_pct)
    if not 0 <= fee <= 100:
        raise SettlementError(f"fee_pct must be within 0-100, got {fee}")
    sign = 1.0 if direction == Direction.PEAK_SHAVING.value else -1.0
    if direction not in (d.value for d in Direction):
        raise SettlementError(f"unknown direction {direction!r}")
    return Terms(price, fee, sign)
