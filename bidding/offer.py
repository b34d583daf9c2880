"""Build the offer for an event from the flexibility envelope and forecast quantiles.

Rule chosen (the "band newsvendor"): for each owner, the declared capacity ``D`` (kW, constant
over the event) maximises the expected settlement value under delivery uncertainty

    E[ revenue(D, X) - penalty(D, X) ],  X = delivered response (kW, event average)

with the programme's band: ``X < lower*D`` earns nothing and pays ``(ref*D - X+) * price *
factor``; otherwise ``min(X, upper*D) * price``. ``X``'s distribution is the quantile function
from the forecast, interpolated linearly between the given levels (flat beyond them) and
sampled at ``n_samples`` mid-point probabilities. The expected value is piecewise linear in
``D`` with kinks only at ``X_k/lower`` and ``X_k/upper``, so trying exactly those points (plus 0
and the envelope) finds the maximiser on the sampled distribution, no grid error. Inside the
band the pay does not depend on ``D``, so there are often many maximisers: we take the one
nearest the median delivery (declare what we expect to deliver, when that costs nothing). A
low penalty factor makes the rule declare above the median (the 120% cap costs more than the
occasional penalty); a harsh one makes it cautious. Optionally a
chance constraint ``P(X >= lower*D) >= confidence`` (settings.bidding.delivery_confidence)
caps ``D`` at ``q_{1-confidence}(X) / lower``. ``D`` never exceeds the envelope (the smallest
flexibility over the event's intervals).

Deliverable response from a load forecast: when ``F`` kW is dispatched, the settled response is
``F + (B - L)`` (peak shaving; baseline ``B``, true load ``L``), so its quantile at level ``p``
is ``F + B - L_{1-p}`` (:func:`deliverable_quantiles`). Across intervals the event average uses
the mean of each quantile level (comonotonic, i.e. conservative). Owner offers add up to the
VPP offer (sum of individual optima: conservative, since it ignores diversification); each
owner's share is kept for settlement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

import numpy as np

from bidding.programme import Product
from bidding.rules import Band, Direction
from vpp.errors import ValidationError


@dataclass(frozen=True)
class CapacityChoice:
    declared_kw: float
    expected_value_yuan_per_h: float  # E[revenue - penalty] per hour of event
    expected_response_kw: float
    p_penalty: float  # probability that delivery falls below the band
    limited_by: str  # "optimum" | "envelope" | "confidence" | "nothing to offer"


@dataclass(frozen=True)
class OwnerOffer:
    owner_id: int
    declared_kw: float
    choice: CapacityChoice


@dataclass(frozen=True)
class VppOffer:
    event_type: str
    direction: str
    declared_kw: float
    price_yuan_per_kwh: Decimal
    owners: list[OwnerOffer]
    shares: dict[int, float] = field(default_factory=dict)  # owner_id -> fraction of declared
    rule: str = "band newsvendor"

    def owner_declared_kw(self) -> dict[int, float]:
        return {o.owner_id: o.declared_kw for o in self.owners}

    def to_detail(self) -> dict:
        """For ``Bid.detail`` (JSON)."""
        return {
            "rule": self.rule, "event_type": self.event_type, "direction": self.direction,
            "owners": [
                {"owner_id": o.owner_id, "declared_kw": o.declared_kw,
                 "share": self.shares.get(o.owner_id, 0.0),
                 "expected_response_kw": o.choice.expected_response_kw,
                 "p_penalty": o.choice.p_penalty, "limited_by": o.choice.limited_by}
                for o in self.owners
            ],
        }


def deliverable_quantiles(
    flex_kw: np.ndarray, baseline_kw: np.ndarray, load_quantiles_kw: np.ndarray,
    direction: str = Direction.PEAK_SHAVING.value,
) -> np.ndarray:
    """Quantiles (levels x intervals) of the settled response when ``flex_kw`` is dispatched.

    ``load_quantiles_kw`` is (levels, intervals), levels ascending. Peak shaving:
    ``F + B - L_{1-p}`` (reverse the level order); valley filling: ``F + L_p - B``.
    """
    lq = np.asarray(load_quantiles_kw, dtype=float)
    f = np.asarray(flex_kw, dtype=float)
    b = np.asarray(baseline_kw, dtype=float)
    if direction == Direction.PEAK_SHAVING.value:
        return f + b - lq[::-1]
    return f + lq - b


def _samples(levels: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    p = (np.arange(n) + 0.5) / n
    return np.interp(p, levels, values)


def choose_capacity(
    levels: Sequence[float], response_quantiles_kw: Sequence[float], envelope_kw: float,
    band: Band, price_yuan_per_kwh: Decimal | float, *, confidence: float | None = None,
    n_samples: int = 200,
) -> CapacityChoice:
    """The declared capacity (kW) maximising expected value; see the module docstring."""
    lv = np.asarray(levels, dtype=float)
    q = np.asarray(response_quantiles_kw, dtype=float)
    if lv.ndim != 1 or lv.shape != q.shape or lv.size == 0:
        raise ValidationError("quantile levels and values must be 1-D arrays of the same length")
    if not np.all((lv > 0) & (lv < 1)) or np.any(np.diff(lv) <= 0):
        raise ValidationError("quantile levels must be increasing and within (0, 1)")
    if not np.isfinite(q).all() or not np.isfinite(envelope_kw):
        raise ValidationError("forecast quantiles and envelope must be finite")
    q = np.maximum.accumulate(q)  # repair crossing quantiles
    x = _samples(lv, q, n_samples)
    lower = float(band.lower_pct) / 100
    upper = float(band.upper_pct) / 100
    ref = float(band.penalty_reference_pct) / 100
    factor = float(band.penalty_factor)
    price = float(price_yuan_per_kwh)
    env = max(float(envelope_kw), 0.0)
    if env <= 0:
        return CapacityChoice(0.0, 0.0, float(x.mean()), 0.0, "nothing to offer")
    cand = [0.0, env]
    if lower > 0:
        cand += list(x[x > 0] / lower)
    cand += list(x[x > 0] / upper)
    cand.append(float(np.median(x)))
    d = np.unique(np.clip(np.asarray(cand), 0.0, env))
    limited = "optimum"
    if confidence is not None and lower > 0:
        cap = max(float(np.quantile(x, 1 - confidence)), 0.0) / lower
        if cap < env:
            d = np.unique(np.append(d[d <= cap], cap))
    xs = x[None, :]
    dd = d[:, None]
    ok = xs >= lower * dd
    rev = np.where(ok, np.minimum(xs, upper * dd), 0.0) * price
    pen = np.where(ok, 0.0, np.maximum(ref * dd - np.maximum(xs, 0.0), 0.0)) * price * factor
    value = (rev - pen).mean(axis=1)
    # Ties are common (within the band the pay does not depend on D): among the maximisers take
    # the one nearest the median delivery, i.e. declare what we expect to deliver.
    tol = 1e-9 * max(1.0, float(np.abs(value).max()))
    best_set = np.flatnonzero(value >= value.max() - tol)
    median = float(np.median(x))
    best = int(best_set[np.argmin(np.abs(d[best_set] - median))])
    chosen = float(d[best])
    if chosen >= env - 1e-9 and env > 0:
        limited = "envelope"
    elif confidence is not None and lower > 0 and chosen >= d.max() - 1e-9 and d.max() < env:
        limited = "confidence"
    return CapacityChoice(
        declared_kw=chosen, expected_value_yuan_per_h=float(value[best]),
        expected_response_kw=float(x.mean()),
        p_penalty=float((~ok[best]).mean()) if chosen > 0 else 0.0, limited_by=limited,
    )


def owner_offer(
    owner_id: int, levels: Sequence[float], response_quantiles_kw: np.ndarray,
    envelope_kw: np.ndarray, band: Band, price_yuan_per_kwh: Decimal, *,
    confidence: float | None = None,
) -> OwnerOffer:
    """One owner's offer over an event: quantiles (levels x intervals), envelope per interval."""
    rq = np.atleast_2d(np.asarray(response_quantiles_kw, dtype=float))
    if rq.shape[0] != len(levels):
        rq = rq.T
    avg = rq.mean(axis=1)  # comonotonic event average per level
    env = float(np.min(envelope_kw))
    choice = choose_capacity(levels, avg, env, band, price_yuan_per_kwh, confidence=confidence)
    return OwnerOffer(owner_id, round(choice.declared_kw, 3), choice)


def aggregate_offers(
    offers: Sequence[OwnerOffer], product: Product, price_yuan_per_kwh: Decimal, *,
    min_declared_kw: float = 0.0, normal_load_kw: float | None = None,
    min_share_of_normal_load_pct: float = 0.0,
) -> VppOffer:
    """One VPP offer from the owners' offers, checked against the programme's caps/minimums."""
    price = Decimal(price_yuan_per_kwh)
    if price < 0:
        raise ValidationError(f"bid price {price} yuan/kWh is negative")
    cap = product.price_cap_yuan_per_kwh
    if cap is not None and price > cap:
        raise ValidationError(
            f"bid price {price} yuan/kWh is over the cap {cap} yuan/kWh of {product.key}"
        )
    if product.energy_price_yuan_per_kwh is not None and price != product.energy_price_yuan_per_kwh:
        raise ValidationError(
            f"{product.key} pays a fixed {product.energy_price_yuan_per_kwh} yuan/kWh; "
            f"bid {price} is not accepted"
        )
    kept = [o for o in offers if o.declared_kw > 0]
    total = sum(o.declared_kw for o in kept)
    if total <= 0:
        raise ValidationError("no owner can offer any capacity for this event")
    if total < min_declared_kw:
        raise ValidationError(
            f"offer of {total:,.0f} kW is below the programme minimum of {min_declared_kw:,.0f} kW"
        )
    if normal_load_kw is not None and min_share_of_normal_load_pct > 0:
        need = normal_load_kw * min_share_of_normal_load_pct / 100
        if total < need:
            raise ValidationError(
                f"offer of {total:,.0f} kW is below {min_share_of_normal_load_pct:g}% of the "
                f"normal load ({need:,.0f} kW of {normal_load_kw:,.0f} kW)"
            )
    return VppOffer(
        event_type=product.event_type.value, direction=product.direction.value,
        declared_kw=round(total, 3), price_yuan_per_kwh=price, owners=kept,
        shares={o.owner_id: o.declared_kw / total for o in kept},
    )


def cap_owner_offers(offers: Sequence[OwnerOffer], requested_kw: float | None
               ) -> tuple[list[OwnerOffer], float | None]:
    """Scale owners' offers down pro rata so their sum is at most ``requested_kw``.

    Returns the offers and the uncapped total when a cap applied (else None). Declaring more
    than the grid asked for earns nothing and risks a band penalty on the excess.
    """
    total = sum(o.declared_kw for o in offers if o.declared_kw > 0)
    if requested_kw is None or requested_kw <= 0 or total <= requested_kw:
        return list(offers), None
    f = requested_kw / total
    out = [replace(o, declared_kw=round(o.declared_kw * f, 3)) for o in offers]
    # rounding must not push the sum over the request
    excess = sum(o.declared_kw for o in out) - requested_kw
    if excess > 0:
        k = max(range(len(out)), key=lambda i: out[i].declared_kw)
        out[k] = replace(out[k], declared_kw=round(out[k].declared_kw - excess, 3))
    return out, round(total, 3)
