"""Re-export of the synthetic fleet helpers used by the tests."""

from bidding.synthetic import (  # noqa: F401
    DEMO_OWNERS,
    TZ,
    add_event,
    make_fleet,
    simulate_event_day,
    simulate_history,
)
