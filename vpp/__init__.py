"""Xiang VPP: a virtual power plant and demand-response aggregator.

The ``vpp`` package holds the domain model, storage, configuration, the CLI and (later) the
scheduler, daemon and API. Forecasting, bidding, device adapters and simulators live in their own
top-level packages.
"""

__version__ = "0.1.0"
