"""Time conventions: every timestamp is timezone-aware.

The default zone is Asia/Shanghai and the default market interval 15 minutes: the defaults of
``service.timezone`` and ``service.market_interval_minutes``, written here once; code takes the
configured ones (:class:`vpp.calendar.MarketCalendar`). Storage keeps UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_INTERVAL_MINUTES = 15


def zone(name: str = DEFAULT_TIMEZONE) -> ZoneInfo:
    """Return the ``ZoneInfo`` for ``name`` (raises ``ZoneInfoNotFoundError`` if unknown)."""
    return ZoneInfo(name)


def now(tz: str = DEFAULT_TIMEZONE) -> datetime:
    """The current time, aware, in ``tz``."""
    return datetime.now(ZoneInfo(tz))


def require_aware(ts: datetime, name: str = "timestamp") -> datetime:
    """Return ``ts`` unchanged if it carries a timezone, else raise ``ValueError``."""
    if ts.tzinfo is None or ts.tzinfo.utcoffset(ts) is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {ts.isoformat()}")
    return ts


def to_utc(ts: datetime) -> datetime:
    """Convert an aware timestamp to UTC."""
    return require_aware(ts).astimezone(UTC)


def floor_to_interval(ts: datetime, minutes: int) -> datetime:
    """Floor an aware timestamp to the start of its ``minutes`` market interval (in its own
    zone; :meth:`vpp.calendar.MarketCalendar.floor` floors in the market's)."""
    require_aware(ts)
    discard = timedelta(
        minutes=ts.minute % minutes, seconds=ts.second, microseconds=ts.microsecond
    )
    return ts - discard
