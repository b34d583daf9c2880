"""Programme rule types shared by offers and settlement: event types, directions, the band.

Kept apart from :mod:`bidding.programme` (which reads the files) so that pure settlement code
depends only on these small models.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventType(StrEnum):
    DAY_AHEAD = "day_ahead"  # 约定/邀约响应: invitation the day (or days) before
    REAL_TIME = "real_time"  # 实时响应: notice minutes to hours ahead


class Direction(StrEnum):
    PEAK_SHAVING = "peak_shaving"  # reduce consumption below the baseline
    VALLEY_FILLING = "valley_filling"  # raise consumption above the baseline


class Band(_Model):
    """Effective-response band, as percentages of the declared capacity.

    Response below ``lower_pct`` earns nothing and is penalised:
    ``penalty = (declared * penalty_reference_pct% - max(actual, 0)) * price * penalty_factor``
    (per kWh over the event). Between ``lower_pct`` and ``upper_pct`` the response is paid;
    above ``upper_pct`` it is paid at ``upper_pct``.
    """

    lower_pct: Decimal = Field(Decimal("50"), ge=0, le=100)
    upper_pct: Decimal = Field(Decimal("120"), ge=100)
    penalty_reference_pct: Decimal = Field(Decimal("50"), ge=0, le=100)
    penalty_factor: Decimal = Field(Decimal("0.5"), ge=0)
    basis: str = Field("event", pattern="^(event|interval)$")
