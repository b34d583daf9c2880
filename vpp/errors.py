"""One exception hierarchy for the whole aggregator.

Every error that can reach a user derives from :class:`VppError` and carries a stable ``code``
(used by the CLI and, later, the API) and a one-line message that says what was wrong.
"""

from __future__ import annotations


class VppError(Exception):
    """Base of every error we raise on purpose. ``str(err)`` is a one-line, user-facing message."""

    code = "vpp_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(VppError):
    """A configuration file or environment override is invalid (names file, key and reason)."""

    code = "config_invalid"


class ValidationError(VppError):
    """Input from a user (CLI argument, API payload, CSV data) is invalid."""

    code = "invalid_input"


class NoHistoryError(ValidationError):
    """Nothing to estimate from: no forecast and no metered history for the window (a fleet
    enrolled today). The one case where the daemon bids from device capability alone."""

    code = "no_history"


class NotFoundError(VppError):
    """A referenced entity (owner, gateway, device, event) does not exist."""

    code = "not_found"


class ConflictError(VppError):
    """The request conflicts with existing state (duplicate unit id, duplicate gateway)."""

    code = "conflict"


class StorageError(VppError):
    """The database cannot be reached or its schema is not one we can work with."""

    code = "storage_error"


class DeviceError(VppError):
    """A device or gateway misbehaved: unreachable, timeout, exception reply, implausible data."""

    code = "device_error"
