"""Pure settlement of one demand-response event: response, band, money, and the owners' split.

Inputs are arrays (no I/O): per owner and interval the baseline and metered load (kW), the
declared capacity (kW) of the VPP and of each owner (their share of the offer), the price, the
programme's band, and optionally the time-of-use tariff. Outputs are exact integer fen.

* Response per interval: ``baseline - metered`` for peak shaving (``metered - baseline`` for
  valley filling), converted to integer Wh per owner and interval; the VPP response is the sum.
  Unless the programme counts export (``export_counts``), peak shaving credits an owner's
  metered load as :func:`bidding.export_rule.credited_meter` does: export at the owner's site
  meter (``site_import_kw`` below zero) is added back, and an owner whose site is not metered
  is credited no lower than zero (a battery's export past its host site's load pays nothing).
* Declaration: one kW per owner for the whole event, or one per owner and interval (a
  per-interval declaration, ``owner_declared_kw`` of shape (owners, intervals)): each interval
  is then held to its own declared kW (the per-interval band below) and the event to their sum;
  a flat declaration settles to the same fen and fingerprint either way.
* Band (``Band.basis``, over the whole event or per interval): below ``lower_pct`` of declared
  nothing is paid and the penalty is ``(declared * ref% - max(actual, 0)) * price * factor``;
  from ``lower_pct`` to ``upper_pct`` the response is paid; above, it is paid at ``upper_pct``.
* Revenue = paid energy x price (+ effective kW x capacity price); rounded to fen once.
* Split: the aggregator keeps ``fee_pct`` of the revenue; the rest goes to owners in proportion to
  their verified contribution (positive response, Wh: over the event, or summed over intervals
  when the band applies per interval). The penalty is borne by owners who
  under-delivered, in proportion to their own shortfall against ``ref%`` of their share.
  Invariant (checked): ``sum(payouts) + fee == revenue - penalty``, to the fen.
* ToU bill change per owner: ``sum((metered - baseline) * tariff price)`` over every interval
  given (pass a window wider than the event to see rebound energy moved into other periods);
  negative is a saving on the owner's own electricity bill, reported, not paid by us.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from bidding.money import allocate_fen, yuan_to_fen
from bidding.rules import Band, Direction
from bidding.settlement_inputs import (  # re-exported: settlement's errors and meter rules
    MIN_METERED_SHARE,
    Loads,
    SettlementError,
    Terms,
    check_loads,
    check_terms,
    credited_meter,
    fill_unmetered,
    require_metered_share,
)
from bidding.tariff import TouTariff


@dataclass(frozen=True)
class OwnerResult:
    owner_id: int
    declared_kw: float
    baseline_kwh: float
    metered_kwh: float
    response_kwh: float
    contribution_kwh: float  # positive response that earns a share
    shortfall_kwh: float  # below ref% of the owner's share: bears the penalty
    performance_ratio: float
    revenue_fen: int
    penalty_fen: int
    payout_fen: int  # revenue share - penalty share (negative: the owner owes)
    tou_bill_change_fen: int  # on the owner's own bill; negative = saving


@dataclass(frozen=True)
class EventSettlement:
    direction: str
    price_yuan_per_kwh: Decimal
    fee_pct: Decimal
    band_basis: str
    duration_h: float
    baseline_kwh: float
    metered_kwh: float
    response_kwh: float
    declared_kw: float
    declared_kwh: float
    performance_ratio: float
    paid_kwh: float
    shortfall_kwh: float
    energy_revenue_fen: int
    capacity_revenue_fen: int
    revenue_fen: int
    penalty_fen: int
    fee_fen: int
    net_fen: int  # revenue - penalty = sum(payouts) + fee
    owners: list[OwnerResult]
    intervals: pd.DataFrame = field(repr=False)

    def payouts(self) -> dict[int, int]:
        return {o.owner_id: o.payout_fen for o in self.owners}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (Decimals as strings, timestamps ISO)."""
        d = asdict(self)
        d["price_yuan_per_kwh"] = str(self.price_yuan_per_kwh)
        d["fee_pct"] = str(self.fee_pct)
        frame = self.intervals.reset_index()
        frame["interval_start"] = frame["interval_start"].map(lambda t: t.isoformat())
        d["intervals"] = json.loads(frame.to_json(orient="records", double_precision=6))
        return d

    def fingerprint(self) -> str:
        """SHA-256 of the settlement's content: equal inputs give equal fingerprints."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def _band(resp_wh: int, decl_wh: int, band: Band) -> tuple[Fraction, Fraction]:
    """(paid Wh, shortfall Wh) of one response against one declaration under the band."""
    lower = Fraction(band.lower_pct) / 100
    if decl_wh <= 0:
        return Fraction(max(resp_wh, 0)), Fraction(0)
    if resp_wh < lower * decl_wh:
        ref = Fraction(band.penalty_reference_pct) / 100
        return Fraction(0), max(Fraction(0), ref * decl_wh - max(resp_wh, 0))
    return min(Fraction(resp_wh), Fraction(band.upper_pct) / 100 * decl_wh), Fraction(0)


def _fen(wh: Fraction, price: Decimal) -> int:
    return yuan_to_fen(wh * Fraction(price) / 1000)


@dataclass(frozen=True)
class _EnergyWh:
    """Integer Wh per owner and interval (exact sums from here on)."""
    base_wh: np.ndarray  # (owners, intervals), int64
    meter_wh: np.ndarray  # (owners, intervals), int64
    resp_wh: np.ndarray  # (owners, intervals): the response, signed by direction
    decl_wh_m: np.ndarray  # (owners, event intervals): declared Wh
    decl_t: np.ndarray  # the VPP's declared Wh per event interval
    ev: np.ndarray  # positions of the event intervals
    resp_t: np.ndarray  # the VPP response per event interval, Wh
    decl_wh: int  # the VPP's declared Wh over the event

    @property
    def n_ev(self) -> int:  # number of event intervals
        return len(self.ev)


@dataclass(frozen=True)
class _Banded:
    """The band applied to the VPP response: exact Wh (Fractions), before any rounding."""
    paid_wh: Fraction
    short_wh: Fraction
    per_t: list[tuple[Fraction, Fraction]]  # (paid, shortfall) Wh per event interval


@dataclass(frozen=True)
class _VppMoney:
    """The VPP's money for the event, integer fen, each amount rounded once."""
    energy_fen: int
    cap_fen: int
    penalty_fen: int
    fee_fen: int

    @property
    def revenue_fen(self) -> int:
        return self.energy_fen + self.cap_fen

    @property
    def distributable_fen(self) -> int:
        """Revenue less the aggregator's fee: shared among the owners."""
        return self.revenue_fen - self.fee_fen

    @property
    def net_fen(self) -> int:
        """Revenue less penalty: equals the sum of payouts plus the fee."""
        return self.revenue_fen - self.penalty_fen


@dataclass(frozen=True)
class _OwnerSplit:
    """Per owner (in ``owner_ids`` order): response, contribution and shortfall (Wh) and fen."""
    resp_owner_wh: np.ndarray  # response over the event
    contrib_wh: np.ndarray  # positive response that earns a share
    short_wh: list[Fraction]  # below ref% of the owner's share: bears the penalty
    revenue_fen: list[int]
    penalty_fen: list[int]
    payout_fen: list[int]


def _energy_wh(loads: Loads, sign: float, interval_minutes: int,
               export_counts: bool) -> _EnergyWh:
    """kW per interval to integer Wh (one rounding per owner and interval)."""
    dt_h = interval_minutes / 60.0
    ev = np.flatnonzero(loads.in_event)
    base_wh = np.rint(loads.base_kw * dt_h * 1000.0).astype(np.int64)
    meter_wh = np.rint(loads.meter_kw * dt_h * 1000.0).astype(np.int64)
    site_wh = None if loads.site_kw is None else np.rint(loads.site_kw * dt_h * 1000.0)
    credited = credited_meter(meter_wh, sign, export_counts, site_wh)
    resp_wh = (base_wh - credited) * (1 if sign > 0 else -1)
    decl_wh_m = np.rint(loads.declared_kw[:, ev] * dt_h * 1000.0).astype(np.int64)
    resp_t = resp_wh[:, ev].sum(axis=0)  # VPP response per event interval, Wh
    return _EnergyWh(base_wh, meter_wh, resp_wh, decl_wh_m, decl_wh_m.sum(axis=0), ev, resp_t,
                     int(decl_wh_m.sum()))


def _apply_band(energy: _EnergyWh, band: Band) -> _Banded:
    """Paid and shortfall Wh of the VPP under the band, over the event or interval by interval
    (``band.basis``); the per-interval view is always computed, for the report."""
    per_t = [_band(int(r), int(d), band) for r, d in zip(energy.resp_t, energy.decl_t, strict=True)]
    if band.basis == "event":
        paid, short = _band(int(energy.resp_t.sum()), energy.decl_wh, band)
    else:
        paid = sum((p for p, _ in per_t), Fraction(0))
        short = sum((s for _, s in per_t), Fraction(0))
    return _Banded(paid, short, per_t)


def _vpp_money(banded: _Banded, n_ev: int, band: Band, terms: Terms,
               capacity_price_yuan_per_kw: Decimal | None, interval_minutes: int) -> _VppMoney:
    """Energy and capacity revenue, penalty and fee, each rounded to fen once."""
    energy_fen = _fen(banded.paid_wh, terms.price)
    cap_fen = 0
    if capacity_price_yuan_per_kw:
        effective_kw = banded.paid_wh / Fraction(n_ev * interval_minutes, 60) / 1000
        cap_fen = yuan_to_fen(effective_kw * Fraction(capacity_price_yuan_per_kw))
    revenue_fen = energy_fen + cap_fen
    penalty_fen = _fen(banded.short_wh * Fraction(band.penalty_factor), terms.price)
    fee_fen = yuan_to_fen(Decimal(revenue_fen) * terms.fee_pct / 100 / 100)
    return _VppMoney(energy_fen, cap_fen, penalty_fen, fee_fen)


def _split_owners(energy: _EnergyWh, band: Band, money: _VppMoney) -> _OwnerSplit:
    """Revenue by contribution and penalty by shortfall (largest-remainder splits, fen);
    raises :class:`SettlementError` if payouts + fee != revenue - penalty."""
    n = len(energy.decl_wh_m)
    decl_owner = energy.decl_wh_m.sum(axis=1)  # per owner, over the event
    resp_owner = energy.resp_wh[:, energy.ev].sum(axis=1)
    if band.basis == "event":
        contrib = np.maximum(resp_owner, 0)
    else:  # paid interval by interval: positive response in each interval counts
        contrib = np.maximum(energy.resp_wh[:, energy.ev], 0).sum(axis=1)
    ref = Fraction(band.penalty_reference_pct) / 100
    owner_short = [
        max(Fraction(0), ref * int(decl_owner[i]) - max(int(resp_owner[i]), 0))
        for i in range(n)
    ]
    distributable = money.distributable_fen
    rev_share = allocate_fen(distributable, [int(c) for c in contrib]) if distributable else [0] * n
    if money.penalty_fen:
        weights = owner_short if any(owner_short) else [int(d) for d in decl_owner]
        pen_share = allocate_fen(money.penalty_fen, weights)
    else:
        pen_share = [0] * n
    payouts = [r - p for r, p in zip(rev_share, pen_share, strict=True)]
    if sum(payouts) + money.fee_fen != money.net_fen:  # pragma: no cover - guarded by allocate_fen
        raise SettlementError(
            f"money does not balance: payouts {sum(payouts)} + fee {money.fee_fen} "
            f"!= net {money.net_fen} fen"
        )
    return _OwnerSplit(resp_owner, contrib, owner_short, rev_share, pen_share, payouts)


def _tou_bill_changes(tariff: TouTariff | None, index: pd.DatetimeIndex,
                      energy: _EnergyWh) -> list[int]:
    """Per owner, fen: ``sum((metered - baseline) Wh * tariff price)`` over every interval given
    (not only the event), rounded once; zeros without a tariff."""
    n, t = energy.base_wh.shape
    tou = [0] * n
    if tariff is not None:
        prices = tariff.price_series_decimal(index).to_numpy()
        delta_wh = energy.meter_wh - energy.base_wh
        for i in range(n):
            total = sum(
                (Fraction(int(delta_wh[i, k])) * Fraction(prices[k]) for k in range(t)),
                Fraction(0),
            )
            tou[i] = yuan_to_fen(total / 1000)
    return tou


def _owner_results(owner_ids: Sequence[int], loads: Loads, energy: _EnergyWh,
                   split: _OwnerSplit, tou: list[int]) -> list[OwnerResult]:
    """One :class:`OwnerResult` per owner (kWh from the integer Wh)."""
    owners = []
    ev = energy.ev
    for i in range(len(owner_ids)):
        d_kwh = int(energy.decl_wh_m[i].sum()) / 1000
        owners.append(OwnerResult(
            owner_id=int(owner_ids[i]),
            declared_kw=float(loads.declared_owner_kw[i]),
            baseline_kwh=int(energy.base_wh[i, ev].sum()) / 1000,
            metered_kwh=int(energy.meter_wh[i, ev].sum()) / 1000,
            response_kwh=int(split.resp_owner_wh[i]) / 1000,
            contribution_kwh=int(split.contrib_wh[i]) / 1000,
            shortfall_kwh=float(split.short_wh[i]) / 1000,
            performance_ratio=(int(split.resp_owner_wh[i]) / 1000 / d_kwh) if d_kwh else 0.0,
            revenue_fen=split.revenue_fen[i], penalty_fen=split.penalty_fen[i],
            payout_fen=split.payout_fen[i], tou_bill_change_fen=tou[i],
        ))
    return owners


def _interval_frame(index: pd.DatetimeIndex, loads: Loads, sign: float, energy: _EnergyWh,
                    banded: _Banded, tariff: TouTariff | None,
                    export_counts: bool) -> pd.DataFrame:
    """The VPP per interval (kW, ratio, kWh the interval basis would pay, ToU period/price)."""
    base, mask = loads.base_kw, loads.in_event
    meter = credited_meter(loads.meter_kw, sign, export_counts, loads.site_kw)
    frame = pd.DataFrame(
        {
            "in_event": mask,
            "baseline_kw": base.sum(axis=0),
            "metered_kw": meter.sum(axis=0),
            "declared_kw": np.where(mask, loads.declared_kw.sum(axis=0), 0.0),
            "response_kw": sign * (base.sum(axis=0) - meter.sum(axis=0)),
        },
        index=index.rename("interval_start"),
    )
    t = len(index)
    ratio_t = np.full(t, np.nan)
    ratio_t[energy.ev] = np.where(energy.decl_t > 0, energy.resp_t / np.maximum(energy.decl_t, 1),
                                  np.nan)
    frame["performance_ratio"] = ratio_t
    paid_t = np.zeros(t)
    paid_t[energy.ev] = [float(p) / 1000 for p, _ in banded.per_t]
    frame["paid_kwh_if_interval_basis"] = paid_t
    if tariff is not None:
        frame["tou_period"] = tariff.period_series(index).to_numpy()
        frame["tou_price_yuan_per_kwh"] = tariff.price_series(index).to_numpy()
    return frame


def settle_event(
    *,
    index: pd.DatetimeIndex,
    owner_ids: Sequence[int],
    baseline_kw: Any,
    metered_kw: Any,
    owner_declared_kw: Sequence[float] | np.ndarray,
    price_yuan_per_kwh: Decimal,
    band: Band,
    fee_pct: Decimal | float,
    direction: str = Direction.PEAK_SHAVING.value,
    in_event: Any = None,
    capacity_price_yuan_per_kw: Decimal | None = None,
    price_cap_yuan_per_kwh: Decimal | None = None,
    tariff: TouTariff | None = None,
    interval_minutes: int,
    export_counts: bool,
    site_import_kw: Any = None,
) -> EventSettlement:
    """Settle one event. Arrays are (owners, intervals); ``index`` holds the starts of the
    programme's ``interval_minutes`` measurement intervals.

    ``owner_declared_kw``: kW per owner, or per owner and interval (a per-interval
    declaration; only the event's intervals count). ``in_event`` (bool per interval, default
    all) marks the event window; intervals outside it
    count only for the ToU bill change. ``export_counts``: the programme's (required: the
    daemon and the season settle by the same rule); ``site_import_kw``: (owners, intervals)
    kW at each owner's site meter, + import, NaN where not metered (None: no site meters).
    Raises :class:`SettlementError` for missing or inconsistent data, a price over the cap, or
    money that would not balance.
    """
    loads = check_loads(index, owner_ids, baseline_kw, metered_kw, owner_declared_kw, in_event,
                         site_import_kw)
    terms = check_terms(price_yuan_per_kwh, price_cap_yuan_per_kwh, fee_pct, direction)
    energy = _energy_wh(loads, terms.sign, interval_minutes, export_counts)
    banded = _apply_band(energy, band)
    money = _vpp_money(banded, energy.n_ev, band, terms, capacity_price_yuan_per_kw,
                       interval_minutes)
    split = _split_owners(energy, band, money)
    tou = _tou_bill_changes(tariff, index, energy)
    ev, decl_wh = energy.ev, energy.decl_wh
    total_resp = int(energy.resp_t.sum())
    return EventSettlement(
        direction=direction, price_yuan_per_kwh=terms.price, fee_pct=terms.fee_pct,
        band_basis=band.basis, duration_h=energy.n_ev * (interval_minutes / 60.0),
        baseline_kwh=int(energy.base_wh[:, ev].sum()) / 1000,
        metered_kwh=int(energy.meter_wh[:, ev].sum()) / 1000,
        response_kwh=total_resp / 1000,
        declared_kw=float(loads.declared_owner_kw.sum()), declared_kwh=decl_wh / 1000,
        performance_ratio=total_resp / decl_wh if decl_wh else 0.0,
        paid_kwh=float(banded.paid_wh) / 1000, shortfall_kwh=float(banded.short_wh) / 1000,
        energy_revenue_fen=money.energy_fen, capacity_revenue_fen=money.cap_fen,
        revenue_fen=money.revenue_fen, penalty_fen=money.penalty_fen, fee_fen=money.fee_fen,
        net_fen=money.net_fen, owners=_owner_results(owner_ids, loads, energy, split, tou),
        intervals=_interval_frame(index, loads, terms.sign, energy, banded, tariff,
                                  export_counts),
    )


def check_balance(result: EventSettlement) -> None:
    """Raise :class:`SettlementError` unless payouts + fee == revenue - penalty exactly."""
    total = sum(o.payout_fen for o in result.owners) + result.fee_fen
    if total != result.revenue_fen - result.penalty_fen or not all(
        isinstance(o.payout_fen, int) for o in result.owners
    ):
        raise SettlementError(
            f"money does not balance: payouts + fee = {total} fen, "
            f"revenue - penalty = {result.revenue_fen - result.penalty_fen} fen"
        )


__all__ = ["MIN_METERED_SHARE", "EventSettlement", "OwnerResult", "SettlementError",
           "check_balance", "fill_unmetered", "require_metered_share", "settle_event"]
