"""Fixtures for the bidding tests: a Hunan-like tariff table and a standard band."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bidding.rules import Band


def hunan_like_tariff() -> dict[str, Any]:
    """The (unverified) Hunan ToU table, as written in config/programmes/hunan-2026.toml."""
    return {
        "prices_yuan_per_kwh": {"peak": "0.992", "flat": "0.62", "valley": "0.248"},
        "windows": [
            {"kind": "valley", "start": "23:00", "end": "07:00"},
            {"kind": "flat", "start": "07:00", "end": "11:00"},
            {"kind": "peak", "start": "11:00", "end": "14:00"},
            {"kind": "flat", "start": "14:00", "end": "18:00"},
            {"kind": "peak", "start": "18:00", "end": "23:00"},
        ],
        "critical_peak": [
            {"months": [7, 8], "start": "20:00", "end": "22:00", "uplift_pct": 20},
            {"months": [12, 1], "start": "18:00", "end": "20:00", "uplift_pct": 20},
        ],
    }


@pytest.fixture
def tariff_table() -> dict[str, Any]:
    return hunan_like_tariff()


@pytest.fixture
def band() -> Band:
    return Band(lower_pct=Decimal(50), upper_pct=Decimal(120), penalty_reference_pct=Decimal(50),
                penalty_factor=Decimal("0.5"), basis="event")
