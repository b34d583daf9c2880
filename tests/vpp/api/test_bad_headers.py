"""Invalid bytes in request headers, sent over a raw socket to the real aiohttp server: a clean
400 with a specific message and one log line, never a traceback and never the header's value."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

import pytest

from tests.vpp.api.conftest import Api


async def _raw(api: Api, head: bytes) -> tuple[int, dict[str, str], bytes]:
    u = urlsplit(api.url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    writer.write(head + b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    header_blob, _, body = data.partition(b"\r\n\r\n")
    lines = header_blob.decode("latin-1").split("\r\n")
    headers = dict(ln.split(": ", 1) for ln in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(("line", "reason"), [
    (b"Authorization: Bearer vpp_SECRET\x00tail", "Invalid header value char (header Authorization)"),
    (b"X-Trace\x00Id: 1", r"Invalid header token (header X-Trace\x00Id)"),
    (b"Authorization: Bearer vpp_SECRET\x01\x7f", "Invalid header value char (header Authorization)"),
])
async def test_control_bytes_in_a_header_are_refused_by_the_parser_in_one_line(
        api: Api, caplog: pytest.LogCaptureFixture, line: bytes, reason: str) -> None:
    caplog.set_level(logging.DEBUG)
    status, _, body = await _raw(api, b"GET /api/v1/me HTTP/1.1\r\n" + line + b"\r\n")
    assert status == 400
    assert body.startswith(reason.split(" (")[0].encode())
    _no_traceback(caplog)
    warnings = [r.getMessage() for r in caplog.records if r.name == "vpp.api.server"]
    assert warnings == [f"refused a malformed HTTP request from 127.0.0.1: 400 {reason}"]
    assert "SECRET" not in caplog.text


@pytest.mark.parametrize("token", [b"vpp_SECRET\xff\xfe", "vpp_SECRET\u00e9".encode(), b"vpp_\xc3\x28"])
async def test_non_ascii_bearer_token_is_a_400_from_auth(
        api: Api, caplog: pytest.LogCaptureFixture, token: bytes) -> None:
    caplog.set_level(logging.DEBUG)
    status, headers, body = await _raw(
        api, b"GET /api/v1/me HTTP/1.1\r\nAuthorization: Bearer " + token + b"\r\n")
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    err = json.loads(body)["error"]
    assert err == {"code": "invalid_input", "message": (
        "malformed Authorization header: a bearer token is printable ASCII "
        "(found a non-ASCII or control character)")}
    _no_traceback(caplog)
    assert [r.getMessage() for r in caplog.records if r.name == "vpp.api"] == [
        "refused GET /api/v1/me from 127.0.0.1: invalid characters in the bearer token"]
    assert "SECRET" not in caplog.text


async def test_the_server_still_answers_after_bad_requests(api: Api) -> None:
    await _raw(api, b"GET /api/v1/me HTTP/1.1\r\nX-A: \x00\r\n")
    status, _, body = await _raw(api, b"GET /api/v1/health HTTP/1.1\r\n")
    assert status == 200 and json.loads(body)["status"] in {"ok", "degraded"}
