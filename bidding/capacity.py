"""Monthly capacity payment (pure): the VPP's capacity credit for a month, its price, and the
owners' split, in integer fen.

Rule implemented (programme data: ``capacity_payment_yuan_per_kw_month`` and
``capacity_payment_directions``): the month's **capacity credit** is the mean, over the month's
settled events of the paid directions, of each event's **effective kW**: its paid energy under
the band divided by its duration (the same effective kW a per-kW event price is paid on in
:mod:`bidding.settlement`; zero for an event below the band's lower edge, capped at the upper
edge). Payment = credit kW x price (yuan/kW-month), rounded to fen once. The aggregator keeps
``fee_pct`` of it, as of an event's revenue (rounded once); the rest goes to the owners in
proportion to their part of the credit: in each event, the event's effective kW split by their
verified contribution (positive response, the event's own revenue key), averaged over the
month's events like the credit. Invariant: ``sum(owner parts) + fee == total``, to the fen.

ASSUMPTION (no rule found): Hainan's 2025 draft pays "standby capacity 0.3 yuan/kW per month"
without saying how the capacity is measured, and Hunan's rules name no capacity payment. We pay
the capacity the month's events **verified** (no payment for capacity never called or never
proven; a failed event lowers the month's credit), and a month without a settled event earns
nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from bidding.money import allocate_fen, yuan_to_fen
from bidding.programme import Programme
from vpp.errors import ValidationError

MONTH = re.compile(r"^(20\d\d)-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class EventCapacity:
    """What the capacity payment needs of one settled event (its current settlement)."""

    event_id: int
    direction: str
    paid_wh: Fraction  # paid energy under the band, Wh (exact: the band's cap is a fraction)
    duration_minutes: int  # the event's settled intervals
    contribution_wh: Mapping[int, int]  # owner id -> verified contribution (positive response), Wh

    @property
    def effective_kw(self) -> Fraction:
        """Paid energy over the event's duration, kW (exact)."""
        return Fraction(self.paid_wh) / 1000 / Fraction(self.duration_minutes, 60)


@dataclass(frozen=True)
class CapacityPayment:
    """One month's capacity payment of one programme: credit, total, fee and owners' parts."""

    programme: str
    month: str  # "YYYY-MM", local calendar month
    price_yuan_per_kw_month: Decimal
    fee_pct: Decimal
    event_ids: tuple[int, ...]  # the events the credit was verified by
    credit_kw: Fraction  # mean effective kW of those events
    total_fen: int
    fee_fen: int
    owners: dict[int, int]  # owner id -> fen (sorted by owner id)
    owner_credit_kw: dict[int, Fraction]  # each owner's part of the credit, kW

    @property
    def owners_fen(self) -> int:
        return sum(self.owners.values())


def event_capacity(event_id: int, direction: str, paid_kwh: float, duration_h: float,
                   contribution_kwh: Mapping[int, float]) -> EventCapacity:
    """The capacity inputs of one settlement's figures (an :class:`EventSettlement` or its
    stored dict): paid kWh and owners' contributions as settlement reports them (integer Wh
    /1000, or the band's exact fraction), so the daemon, the CLI and the season agree."""
    return EventCapacity(
        event_id=event_id, direction=direction,
        paid_wh=Fraction(Decimal(str(paid_kwh))) * 1000,
        duration_minutes=int(round(duration_h * 60)),
        contribution_wh={int(o): int(round(kwh * 1000)) for o, kwh in contribution_kwh.items()})


def month_bounds(month: str, tz: str) -> tuple[datetime, datetime]:
    """The local calendar month ``YYYY-MM`` as [first, next first) aware datetimes."""
    m = MONTH.match(month)
    if m is None:
        raise ValidationError(f"month must look like 2026-07 (2000-2099), got {month[:20]!r}")
    first = datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=ZoneInfo(tz))
    return first, (first + timedelta(days=32)).replace(day=1)


def _check(events: Sequence[EventCapacity], price: Decimal, fee_pct: Decimal) -> None:
    if price < 0:
        raise ValidationError(f"negative capacity price {price} yuan/kW-month")
    if not 0 <= fee_pct <= 100:
        raise ValidationError(f"fee_pct must be within 0-100, got {fee_pct}")
    ids = [e.event_id for e in events]
    if len(set(ids)) != len(ids):
        raise ValidationError(f"an event is counted twice: {sorted(ids)}")
    for e in events:
        if e.duration_minutes <= 0 or e.paid_wh < 0:
            raise ValidationError(f"event {e.event_id}: duration {e.duration_minutes} min and "
                                  f"paid {e.paid_wh} Wh must be positive")
        if any(w < 0 for w in e.contribution_wh.values()):
            raise ValidationError(f"event {e.event_id}: a negative contribution")
        if e.paid_wh > 0 and not any(e.contribution_wh.values()):
            raise ValidationError(f"event {e.event_id}: paid energy but no owner contributed")


def _owner_credit(events: Sequence[EventCapacity]) -> dict[int, Fraction]:
    """Each owner's part of the mean effective kW (exact; sums to the credit)."""
    parts: dict[int, Fraction] = {}
    for e in events:
        total = sum(e.contribution_wh.values())
        for owner, wh in e.contribution_wh.items():
            share = e.effective_kw * wh / total if total else Fraction(0)
            parts[owner] = parts.get(owner, Fraction(0)) + share / len(events)
    return dict(sorted(parts.items()))


def capacity_payment(
    events: Sequence[EventCapacity], *, programme: str, month: str,
    price_yuan_per_kw_month: Decimal, fee_pct: Decimal, directions: Sequence[str],
) -> CapacityPayment:
    """The month's capacity payment from its settled events (only ``directions`` count).

    Raises :class:`ValidationError` for a negative price, a fee outside 0-100, an event counted
    twice, or an event paid with no owner contributing (its split would have no key).
    """
    counted = [e for e in events if e.direction in directions]
    _check(counted, price_yuan_per_kw_month, fee_pct)
    if not counted:
        return CapacityPayment(programme, month, price_yuan_per_kw_month, fee_pct, (), Fraction(0),
                               0, 0, {}, {})
    credit = sum((e.effective_kw for e in counted), Fraction(0)) / len(counted)
    total = yuan_to_fen(credit * Fraction(price_yuan_per_kw_month))
    fee = yuan_to_fen(Decimal(total) * fee_pct / 100 / 100)
    owner_credit = _owner_credit(counted)
    owners = list(owner_credit)
    parts = (allocate_fen(total - fee, list(owner_credit.values())) if total - fee
             else [0] * len(owners))
    return CapacityPayment(
        programme=programme, month=month, price_yuan_per_kw_month=price_yuan_per_kw_month,
        fee_pct=fee_pct, event_ids=tuple(sorted(e.event_id for e in counted)), credit_kw=credit,
        total_fen=total, fee_fen=fee, owners=dict(zip(owners, parts, strict=True)),
        owner_credit_kw=owner_credit,
    )


def programme_month_payment(events: Sequence[EventCapacity], programme: Programme, month: str,
                            fee_pct: Decimal | float) -> CapacityPayment:
    """The month's payment under ``programme`` (the version in force on the month's first day:
    its price and paid directions), from the month's settled events."""
    return capacity_payment(
        events, programme=programme.name, month=month,
        price_yuan_per_kw_month=programme.rules.capacity_payment_yuan_per_kw_month,
        fee_pct=Decimal(str(fee_pct)),
        directions=[d.value for d in programme.rules.capacity_payment_directions])
