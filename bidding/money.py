"""Exact money: integer fen, one rounding rule, and a deterministic largest-remainder split.

Energies enter money only as integer watt-hours, prices as :class:`~decimal.Decimal` yuan/kWh,
so every amount is an exact rational before it is rounded to fen once (half up, away from
zero). Splitting an amount among parties uses the largest-remainder method with ties broken by
position, so the parts always add up to the whole and the same input always gives the same parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from vpp.errors import ValidationError

FEN_PER_YUAN = 100


def to_wh(energy_kwh: float) -> int:
    """Energy in kWh (float, from meters) to integer Wh, rounded half to even."""
    return int(round(energy_kwh * 1000.0))


def yuan_to_fen(amount_yuan: Decimal | Fraction) -> int:
    """Round an exact yuan amount to integer fen (half up, away from zero)."""
    if isinstance(amount_yuan, Fraction):
        amount_yuan = Decimal(amount_yuan.numerator) / Decimal(amount_yuan.denominator)
    return int((amount_yuan * FEN_PER_YUAN).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def energy_cost_fen(energy_wh: int, price_yuan_per_kwh: Decimal) -> int:
    """``energy_wh`` times a price in yuan/kWh, in fen (one rounding)."""
    return yuan_to_fen(Decimal(energy_wh) * price_yuan_per_kwh / 1000)


def fmt_yuan(fen: int) -> str:
    """``123456`` -> ``'1,234.56'`` (exact, no float)."""
    sign = "-" if fen < 0 else ""
    y, f = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{y:,}.{f:02d}"


def allocate_fen(total_fen: int, weights: Sequence[int | Fraction | Decimal]) -> list[int]:
    """Split ``total_fen`` in proportion to non-negative ``weights``; the parts sum to the total.

    Largest remainder: every part gets the floor of its exact share, then the leftover fen go one
    each to the largest fractional remainders (ties: lower position first). A negative total is
    split like its absolute value and negated. Raises :class:`ValidationError` if a weight is
    negative, or if all weights are zero while the total is not.
    """
    if not isinstance(total_fen, int):
        raise ValidationError(f"amount must be integer fen, got {type(total_fen).__name__}")
    ws = [Fraction(w) if not isinstance(w, Decimal) else Fraction(w) for w in weights]
    if any(w < 0 for w in ws):
        raise ValidationError("allocation weights must not be negative")
    if not ws:
        if total_fen:
            raise ValidationError(f"cannot allocate {total_fen} fen among no parties")
        return []
    wsum = sum(ws, Fraction(0))
    if wsum == 0:
        if total_fen:
            raise ValidationError(f"cannot allocate {total_fen} fen: every weight is zero")
        return [0] * len(ws)
    sign = -1 if total_fen < 0 else 1
    amount = abs(total_fen)
    exact = [amount * w / wsum for w in ws]
    parts = [int(e) for e in exact]  # floor (non-negative)
    left = amount - sum(parts)
    order = sorted(range(len(ws)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    return [sign * p for p in parts]
