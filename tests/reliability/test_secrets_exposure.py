"""Secrets and exposure: tokens stored hashed and compared in constant time, never logged;
the daemon binds 127.0.0.1 unless told otherwise; TLS when a certificate is configured;
secrets come from the environment, not from the files in ``config/``."""

from __future__ import annotations

import logging
import re
import ssl
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import Engine
from sqlmodel import select

import vpp.security
from tests.conftest import REPO_ROOT
from tests.reliability.world import build_world, request
from tests.tls_certs import self_signed
from tests.vpp.api.conftest import Api
from tests.vpp.daemon.harness import daemon_settings
from vpp.config import ApiSettings, Settings, load_settings
from vpp.db import session_scope
from vpp.errors import ConfigError
from vpp.models import ApiToken
from vpp.server import Daemon, tls_context


async def test_tokens_are_hashed_compared_in_constant_time_and_never_logged(
        api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    compared: list[tuple[str, str]] = []
    real = vpp.security.hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(vpp.security.hmac, "compare_digest", spy)
    w = await build_world(api)
    tokens = [t for t in w.tokens.values() if t]
    # every kind of answer: ok, 400, 401 (unknown, revoked, malformed), 403, 404, 405, 413
    for t in tokens:
        for method, path, body in [
            ("GET", "/api/v1/me", None), ("GET", "/api/v1/owners", None),
            ("GET", "/api/v1/devices/999999", None), ("POST", "/api/v1/grid/calls", {"x": 1}),
            ("DELETE", "/api/v1/devices", None), ("GET", "/api/v1/events?limit=0", None),
        ]:
            await request(api, method, path, t, body)
        await request(api, "GET", "/api/v1/me", t + "x")
        await request(api, "GET", "/api/v1/me", t[:-1])
        async with api.http.get(api.url + "/api/v1/me",
                                headers={"Authorization": f"Basic {t}"}) as r:
            assert r.status == 401
    assert compared, "tokens must be checked with hmac.compare_digest"
    text = caplog.text
    for t in tokens:
        secret = t.removeprefix(vpp.security.TOKEN_PREFIX)
        assert secret[:16] not in text, "a token (or a prefix of one) reached the log"
    with session_scope(api.engine) as s:
        stored = {r.token_hash for r in s.exec(select(ApiToken)).all()}
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored)
    assert not any(t in stored for t in tokens)
    assert {vpp.security.hash_token(t) for t in tokens} <= stored


def test_binds_loopback_by_default() -> None:
    assert ApiSettings().host == "127.0.0.1"
    assert Settings().api.host == "127.0.0.1"
    for name in ("default.toml", "zhuzhou-demo.toml"):
        s = load_settings(REPO_ROOT / "config" / name)
        assert s.api.host in ("127.0.0.1", "localhost", "::1"), (name, s.api.host)


async def test_the_daemon_listens_on_loopback_only(sqlite_engine: Engine, tmp_path: Path) -> None:
    daemon = Daemon(daemon_settings(tmp_path, str(sqlite_engine.url)), sqlite_engine, port=0)
    await daemon.start()
    try:
        assert daemon.url.startswith("http://127.0.0.1:")
        site_sockets = [s.getsockname()[0] for r in [daemon._runner] if r
                        for site in r.sites for s in site._server.sockets]  # type: ignore[union-attr]
        assert site_sockets and set(site_sockets) == {"127.0.0.1"}
    finally:
        await daemon.stop()


async def test_tls_when_a_certificate_is_configured(sqlite_engine: Engine, tmp_path: Path) -> None:
    """Before the fix, ``api.tls_cert_file`` was accepted and silently ignored (plain HTTP)."""
    cert, key = self_signed(tmp_path)
    settings = daemon_settings(tmp_path, str(sqlite_engine.url))
    settings.api.tls_cert_file, settings.api.tls_key_file = cert, key
    daemon = Daemon(settings, sqlite_engine, port=0)
    await daemon.start()
    try:
        assert daemon.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as http:
            async with http.get(daemon.url + "/api/v1/health", ssl=trust) as r:
                assert r.status == 200
            plain = daemon.url.replace("https://", "http://") + "/api/v1/health"
            with pytest.raises(aiohttp.ClientError):
                async with http.get(plain) as r:
                    await r.read()
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with http.get(daemon.url + "/api/v1/health") as r:  # untrusted cert
                    await r.read()
    finally:
        await daemon.stop()


def test_half_a_tls_configuration_is_refused(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    with pytest.raises(ConfigError, match="must be set together"):
        tls_context(cert, None)
    with pytest.raises(ConfigError, match="cannot load"):
        tls_context(cert, tmp_path / "missing.pem")


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    pattern = re.compile(r"(?i)(://[^/\s:@\"]+:[^@\s\"]+@|password\s*=|secret\s*=|"
                         r"\bvpp_[A-Za-z0-9_-]{20,})")
    for f in sorted((REPO_ROOT / "config").rglob("*.toml")):
        for line in f.read_text().splitlines():
            code = line.split("#", 1)[0]
            assert not pattern.search(code), f"{f.name}: a secret in a config file: {line!r}"
    url = "postgresql://vpp:s3cret-pw@127.0.0.1:5432/vpp"
    monkeypatch.setenv("VPP_DATABASE_URL", url)
    s = load_settings(REPO_ROOT / "config" / "default.toml")
    assert s.database_url == url
    from vpp.db import redact

    assert "s3cret-pw" not in redact(url)
