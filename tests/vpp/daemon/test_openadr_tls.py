"""The VEN against openleadr's VTN over TLS with client certificates and signed messages, set up
only with the settings docs/daemon.md tells an operator to set (cert_file, key_file, ca_file,
vtn_fingerprint, disable_signature = false): the VTN knows the VEN by the fingerprint the VEN
logs at start-up, registers it, and the VEN answers a signed event (here an opt-out with its
reason: the fleet is empty). Certificates are made for the test (a CA, the VTN's server
certificate for 127.0.0.1, the VEN's client certificate)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from openleadr import OpenADRServer
from openleadr.utils import certificate_fingerprint
from sqlalchemy import Engine

from tests.vpp.daemon.harness import daemon_settings, port, wait_for
from vpp.config import Settings
from vpp.server import Daemon

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(directory: Path, name: str, subject: str, ca: tuple[Any, Any] | None,
           server: bool = False) -> tuple[Path, Path, Any, Any]:
    """A PEM certificate and key in ``directory``; self-signed CA when ``ca`` is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    issuer_cert, issuer_key = ca if ca else (None, key)
    b = (x509.CertificateBuilder().subject_name(_name(subject))
         .issuer_name(issuer_cert.subject if issuer_cert else _name(subject))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=1)))
    b = b.add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = b.sign(issuer_key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert, key


def test_a_certificate_without_its_ca_or_key_is_refused_at_load(tmp_path: Path) -> None:
    from vpp.config import OpenAdrSettings

    crt = tmp_path / "ven.crt"
    crt.write_text("x")
    for bad, fragment in [({"cert_file": crt}, "cert_file and key_file go together"),
                          ({"cert_file": crt, "key_file": crt}, "cert_file needs ca_file"),
                          ({"disable_signature": False}, "set cert_file and key_file"),
                          ({"ca_file": tmp_path / "none.crt"}, "ca_file: no file at")]:
        with pytest.raises(ValueError, match=fragment):
            OpenAdrSettings.model_validate(bad)


async def test_tls_with_client_certificates_and_signed_messages(
        sqlite_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    ca_crt, _, ca_cert, ca_key = _issue(certs, "ca", "Test grid CA", None)
    vtn_crt, vtn_key, _, _ = _issue(certs, "vtn", "127.0.0.1", (ca_cert, ca_key), server=True)
    ven_crt, ven_key, _, _ = _issue(certs, "ven", "xiang-vpp", (ca_cert, ca_key))
    ven_fp = certificate_fingerprint(ven_crt.read_text())
    registered: list[dict[str, Any]] = []
    opts: dict[str, str] = {}

    def on_register(registration_info: dict[str, Any]) -> tuple[str, str] | bool:
        registered.append(registration_info)
        if registration_info.get("fingerprint") != ven_fp:
            return False
        return "ven-xiang", "reg-1"

    def ven_lookup(ven_id: str) -> dict[str, str]:
        return {"ven_id": "ven-xiang", "ven_name": "xiang-vpp", "fingerprint": ven_fp,
                "registration_id": "reg-1"} if ven_id == "ven-xiang" else {}

    vtn_port = port()
    vtn = OpenADRServer(vtn_id="HUNAN-GRID-VTN", http_host="127.0.0.1", http_port=vtn_port,
                        cert=str(vtn_crt), key=str(vtn_key), http_cert=str(vtn_crt),
                        http_key=str(vtn_key), http_ca_file=str(ca_crt), ven_lookup=ven_lookup,
                        requested_poll_freq=timedelta(seconds=1), show_fingerprint=False)
    vtn.add_handler("on_create_party_registration", on_register)
    await vtn.run()
    # only what docs/daemon.md tells an operator to set for a VTN with certificates
    openadr = {"vtn_url": f"https://127.0.0.1:{vtn_port}/OpenADR2/Simple/2.0b",
               "cert_file": str(ven_crt), "key_file": str(ven_key), "ca_file": str(ca_crt),
               "vtn_fingerprint": certificate_fingerprint(vtn_crt.read_text()),
               "disable_signature": False}
    Settings.model_validate({"daemon": {"openadr": openadr}})  # valid as a config file
    settings = daemon_settings(tmp_path, str(sqlite_engine.url), openadr=openadr)
    daemon = Daemon(settings, sqlite_engine, port=0)
    caplog.set_level(logging.INFO, logger="vpp.daemon.openadr")
    await daemon.start()
    try:
        ven = daemon.ven
        assert ven is not None
        await wait_for(lambda: asyncio.sleep(0, ven.registered), timeout_s=30,
                       what="registration over TLS")
        assert registered and registered[-1]["ven_name"] == "xiang-vpp"
        logged = [r.getMessage() for r in caplog.records]
        assert f"VEN certificate fingerprint {ven_fp}" in logged  # what the VTN operator needs
        now = datetime.now(UTC)
        start = now - timedelta(minutes=now.minute % 15, seconds=now.second,
                                microseconds=now.microsecond) + timedelta(minutes=30)
        vtn.add_event(ven_id="ven-xiang", signal_name="SIMPLE", signal_type="level",
                      intervals=[{"dtstart": start, "duration": timedelta(hours=1),
                                  "signal_payload": 1}], event_id="tls-evt",
                      callback=lambda ven_id, event_id, opt_type: opts.update(
                          {event_id: opt_type}))
        await wait_for(lambda: asyncio.sleep(0, opts), timeout_s=30, what="the signed answer")
        assert opts == {"tls-evt": "optOut"}
        reason = ven.decisions["tls-evt"].reason
        assert reason is not None and "no dependable capacity" in reason  # no devices enrolled
    finally:
        await daemon.stop()
        await vtn.stop()
