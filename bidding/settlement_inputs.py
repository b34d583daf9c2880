"""What meter data a settlement accepts and credits: its error and missing readings (the "no
response" rule); export past a site's own load (the programme's ``export_counts``) is
:mod:`bidding.export_rule`. Pure numpy; re-exported by :mod:`bidding.settlement`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bidding.export_rule import credited_meter  # noqa: F401  # re-exported
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
