"""Device and gateway errors, each a :class:`vpp.errors.DeviceError` with a one-line message.

Transport failures (unreachable, timeout, malformed reply) and device refusals (Modbus exception
replies, which carry ``exception_code``) stay distinguishable.
"""

from __future__ import annotations

from vpp.errors import DeviceError

EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "device failure", 5: "acknowledge", 6: "device busy", 8: "memory parity error",
    10: "gateway path unavailable", 11: "gateway target failed to respond (wrong unit id?)",
}


class GatewayUnreachable(DeviceError):
    code = "gateway_unreachable"


class RequestTimeout(DeviceError):
    code = "device_timeout"


class MalformedReply(DeviceError):
    code = "malformed_reply"


class ExceptionReply(DeviceError):
    """The device answered with a Modbus exception."""

    code = "modbus_exception"

    def __init__(self, message: str, exception_code: int) -> None:
        super().__init__(message)
        self.exception_code = exception_code


class ImplausibleValue(DeviceError):
    code = "implausible_value"


class ProfileMismatch(DeviceError):
    code = "profile_mismatch"


class UnsafeWrite(DeviceError):
    """A write we refuse to make (register not writable, value outside the declared range)."""

    code = "unsafe_write"
