"""The central system over TLS (``[ocpp] tls_cert_file``/``tls_key_file``): OCPP's security
profile 2, basic auth over wss. A charge point that trusts the certificate boots, one that
does not (or speaks plain ws to it) never reaches the handshake, and a wrong password is still
refused with 401 inside TLS."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path

import pytest
from sqlalchemy import Engine
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from sim.ocpp_chargepoint import SimChargePoint
from tests.tls_certs import self_signed
from tests.vpp.ocpp.conftest import RATED_KW, open_world


async def test_a_charge_point_boots_over_wss_with_basic_auth(engine: Engine,
                                                             tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    async with open_world(engine, tmp_path, tls_cert_file=cert, tls_key_file=key) as world:
        url = world.central.url
        assert url.startswith("wss://127.0.0.1:")
        world.register("CP-TLS")
        trust = ssl.create_default_context(cafile=str(cert))
        cp = SimChargePoint("CP-TLS", "correct-horse-battery-staple-1", "2.0.1", connectors=2,
                            rated_kw=RATED_KW, clock=world.clock, seed=3, meter_period_s=0.2,
                            tls=trust)
        task = asyncio.create_task(cp.run(url))
        try:
            await asyncio.wait_for(cp.booted.wait(), 15)
            assert "CP-TLS" in world.central.connections
        finally:
            cp.stopping = True
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        token = base64.b64encode(b"CP-TLS:wrong-password-123456").decode()
        sub = [Subprotocol("ocpp2.0.1")]
        with pytest.raises(InvalidStatus) as refused:  # the password is checked inside TLS
            async with connect(f"{url}/CP-TLS", subprotocols=sub, ssl=trust,
                               additional_headers={"Authorization": f"Basic {token}"}):
                pass
        assert refused.value.response.status_code == 401
        with pytest.raises(ssl.SSLCertVerificationError):  # an untrusted certificate
            async with connect(f"{url}/CP-TLS", subprotocols=sub, open_timeout=5):
                pass
        with pytest.raises(Exception) as plain:  # plain ws to a TLS listener: no handshake
            async with connect(f"{url.replace('wss://', 'ws://')}/CP-TLS", subprotocols=sub,
                               open_timeout=5):
                pass
        assert not isinstance(plain.value, InvalidStatus)
