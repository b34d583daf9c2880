"""API errors: every failure is JSON ``{"error": {"code": ..., "message": ...}}``.

Codes are stable strings taken from :mod:`vpp.errors` (``invalid_input``, ``not_found``,
``conflict``, ``storage_error``, ``device_error``, ``config_invalid``) plus the API's own
``unauthorized``, ``forbidden``, ``method_not_allowed``, ``payload_too_large`` and
``internal_error``. Messages are one line; tracebacks never reach a client.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pydantic
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from vpp.errors import (
    ConfigError,
    ConflictError,
    DeviceError,
    NotFoundError,
    StorageError,
    ValidationError,
    VppError,
)

log = logging.getLogger("vpp.api")
server_log = logging.getLogger("vpp.api.server")


class AuthError(VppError):
    """No bearer token, an unknown one, or a revoked one."""

    code = "unauthorized"


class ForbiddenError(VppError):
    """The token is valid but its role may not do this."""

    code = "forbidden"


HTTP_STATUS: dict[type[VppError], int] = {
    ValidationError: 400,
    AuthError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    ConfigError: 500,
    DeviceError: 502,
    StorageError: 503,
}

#: Every code the API can answer with, and its HTTP status (documented in the OpenAPI file).
ERROR_CODES: dict[str, int] = {cls.code: status for cls, status in HTTP_STATUS.items()} | {
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "internal_error": 500,
}


def status_for(exc: VppError) -> int:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]  # type: ignore[index]
    return 500


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    """The error body every failure gets (``ErrorOut`` in the OpenAPI document)."""
    out = dict(headers or {})
    if status == 401:
        out["WWW-Authenticate"] = "Bearer"
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers=out or None)


def _method_not_allowed(request: web.Request, exc: web.HTTPMethodNotAllowed) -> web.Response:
    """405 with ``Allow`` (RFC 9110): the methods the path declares, for any other method
    (TRACE, OPTIONS, CONNECT, ...)."""
    allowed = sorted(exc.allowed_methods)
    return error_response(405, "method_not_allowed",
                          f"{request.method} is not allowed on {request.path} "
                          f"(allowed: {', '.join(allowed)})", headers={"Allow": ", ".join(allowed)})


def describe_validation(exc: pydantic.ValidationError, where: str = "body") -> str:
    """One line naming the first bad field and why (``body.end: ...``)."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "missing":
        msg = "field required"
    prefix = f"{where}.{loc}" if loc else where
    more = len(exc.errors()) - 1
    return f"{prefix}: {msg}" + (f" (and {more} more)" if more else "")


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn every exception into a JSON error with a stable code."""
    try:
        return await handler(request)
    except VppError as exc:
        status = status_for(exc)
        if status >= 500:
            log.warning("request failed: %s %s: %s", request.method, request.path, exc.message)
        return error_response(status, exc.code, exc.message)
    except web.HTTPMethodNotAllowed as exc:
        return _method_not_allowed(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {
            404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
            415: "unsupported_media_type",
        }.get(exc.status, "invalid_input" if exc.status < 500 else "internal_error")
        message = exc.reason if exc.status != 404 else f"no route {request.method} {request.path}"
        return error_response(exc.status, code, message)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error (see the daemon log)")


#: the header name in aiohttp's parser message (``b'Name: value'``); the value is never logged
_PARSER_HEADER = re.compile(r"b'([^:']{1,64}):")


def describe_parser_error(exc: HttpProcessingError) -> str:
    """One line for a request aiohttp's HTTP parser refused (400): what and, for a header, which
    one. Only the header's name is kept: its value may be a bearer token."""
    lines = [ln.strip() for ln in exc.message.splitlines() if ln.strip()]
    what = lines[0].rstrip(":") if lines else type(exc).__name__
    header = next((m.group(1) for ln in lines[1:] if (m := _PARSER_HEADER.match(ln))), None)
    return f"{what} (header {header})" if header else what


class ServerLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger aiohttp's connection handler writes to (``handler_args={"logger": ...}``).

    A request the HTTP parser refuses (a NUL or other control byte in a header, a line too long,
    a bad request line) is answered 400 by aiohttp before any handler or middleware runs, and
    aiohttp logs it with a traceback. Here it becomes one WARNING line naming the peer and the
    reason (never a header value); every other error is logged as aiohttp would.
    """

    def __init__(self) -> None:
        super().__init__(server_log, {})

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kw: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            peer = args[0] if args else "?"
            self.logger.warning("refused a malformed HTTP request from %s: %s %s", peer,
                                exc_info.code, describe_parser_error(exc_info))
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kw)
