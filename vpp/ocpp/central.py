"""The OCPP central system (CSMS) inside the daemon: a WebSocket server on ``[ocpp]`` host:port
(``wss`` with ``tls_cert_file``/``tls_key_file``) for OCPP 1.6J and 2.0.1.

Handshake: the URL's last segment is the charge point's identity; it must be a registered OCPP
gateway (else HTTP 404), and the request must carry HTTP Basic credentials whose user is that
identity and whose password matches the registered one (else HTTP 401), and offer a supported
subprotocol (else the connection is closed with 1002). Each refusal is one log line naming the
identity, the peer and the reason; nothing of the refused connection reaches the fleet.

Fleet: every connector of a charge point that is not retired and whose device is active or
offline is a device adapter (:class:`device_adapters.ocpp.adapter.OcppConnectorAdapter`) in
the daemon's poller, connected or not (a charge point that does not connect goes offline by the
poller's rule). Its first accepted BootNotification enrols it
(:func:`vpp.ocpp_gateways.record_boot`) and attaches its connectors at once; :meth:`sync`
(the daemon's ``ocpp`` loop) follows the registry: new, changed, retired or removed charge
points (a retired or removed one is disconnected).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http
import logging
import secrets
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHeader
from websockets.headers import build_www_authenticate_basic, parse_authorization_basic
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from device_adapters.adapter import ProfileAdapter
from device_adapters.modbus_client import GatewayClient
from device_adapters.ocpp.adapter import ChargePointLink, OcppConnectorAdapter, ProfilePolicy
from vpp.config_ocpp import OcppSettings
from vpp.errors import ConfigError
from vpp.models import DeviceStatus, fleet_revision
from vpp.ocpp.boots import BootRecorder
from vpp.ocpp.station import Station
from vpp.ocpp.v16 import LIBRARY_LOG, ChargePoint16
from vpp.ocpp.v201 import ChargePoint201
from vpp.ocpp_gateways import (
    ChargePointRecord,
    ConnectorRecord,
    check_password,
    is_slow_hash,
    load_charge_points,
)
from vpp.poller import DeviceStats

if TYPE_CHECKING:
    from vpp.daemon.fleet_runtime import FleetRuntime
    from vpp.daemon.infra import Infra

log = logging.getLogger("vpp.ocpp")
LIVE = (DeviceStatus.ACTIVE.value, DeviceStatus.OFFLINE.value)


@dataclass(frozen=True)
class _Attached:
    gateway_id: int
    connector: ConnectorRecord


def server_tls(settings: OcppSettings) -> ssl.SSLContext | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(settings.tls_cert_file), str(settings.tls_key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"ocpp.tls_cert_file/ocpp.tls_key_file: cannot load: {exc}") from None
    return ctx


class OcppCentral:
    """The central system over ``fleet``'s poller (see the module docstring)."""

    def __init__(self, infra: Infra, fleet: FleetRuntime, settings: OcppSettings) -> None:
        self.infra = infra
        self.fleet = fleet
        self.settings = settings
        self.policy = ProfilePolicy(settings.profile_validity_s, settings.meter_stale_s,
                                    settings.stack_level)
        self.records: dict[str, ChargePointRecord] = {}
        self.links: dict[str, ChargePointLink] = {}
        self.connections: dict[str, ServerConnection] = {}
        self._attached: dict[int, _Attached] = {}  # device id -> what its adapter was built from
        # identity -> a keyed digest of (stored verifier, password) last accepted: a charge
        # point reconnecting costs no PBKDF2 again (key random per process, never stored)
        self._verified: dict[str, bytes] = {}
        self._cache_key = secrets.token_bytes(32)
        self.boots = BootRecorder(infra.db)
        self._revision: int | None = None
        self._server: Server | None = None
        self.url = ""
        self.refused = 0  # handshakes refused (unknown identity, credentials, subprotocol)

    # -- the server -----------------------------------------------------------------------
    async def start(self) -> str:
        await self.sync()
        s = self.settings
        ctx = server_tls(s)
        logging.getLogger("websockets").setLevel(logging.WARNING)
        LIBRARY_LOG.setLevel(logging.WARNING)
        self._server = await serve(self._connection, s.host, s.port, subprotocols=[
            Subprotocol(p) for p in s.subprotocols], process_request=self._handshake, ssl=ctx,
            ping_interval=60, ping_timeout=60, max_size=2**20)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"{'wss' if ctx else 'ws'}://{s.host}:{port}{s.path_prefix}"
        log.info("OCPP central system listening at %s (%s)", self.url, ", ".join(s.versions))
        return self.url

    async def stop(self) -> None:
        """Close the server and every connection (charge points keep their profiles until
        their validity ends)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.boots.close()

    def _identity(self, path: str) -> str | None:
        prefix = self.settings.path_prefix + "/"
        path = path.split("?", 1)[0]
        if not path.startswith(prefix) or "/" in path[len(prefix):] or len(path) == len(prefix):
            return None
        return path[len(prefix):]

    def _refuse(self, conn: ServerConnection, status: http.HTTPStatus, identity: str | None,
                reason: str) -> Response:
        self.refused += 1
        log.warning("OCPP connection refused: %s (identity %r from %s)", reason, identity,
                    conn.remote_address[0] if conn.remote_address else "?")
        response = conn.respond(status, reason + "\n")
        if status is http.HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = build_www_authenticate_basic("ocpp")
        return response

    async def _handshake(self, conn: ServerConnection, request: Request) -> Response | None:
        identity = self._identity(request.path)
        if identity is None:
            return self._refuse(conn, http.HTTPStatus.NOT_FOUND, None,
                                f"path {request.path!r} is not {self.settings.path_prefix}/"
                                "<identity>")
        record = self.records.get(identity) or await self._reload(identity)
        if record is None:
            return self._refuse(conn, http.HTTPStatus.NOT_FOUND, identity,
                                "unknown charge point identity")
        return await self._authenticate(conn, request.headers, record)

    async def _authenticate(self, conn: ServerConnection, headers: Headers,
                            record: ChargePointRecord) -> Response | None:
        identity = record.identity
        if "Authorization" not in headers:
            return self._refuse(conn, http.HTTPStatus.UNAUTHORIZED, identity,
                                "no credentials (HTTP Basic with the registered password)")
        try:
            user, password = parse_authorization_basic(headers["Authorization"])
        except InvalidHeader:
            return self._refuse(conn, http.HTTPStatus.UNAUTHORIZED, identity,
                                "credentials are not HTTP Basic")
        if user != identity:
            return self._refuse(conn, http.HTTPStatus.UNAUTHORIZED, identity,
                                f"user {user!r} is not the charge point's identity")
        stored = record.password_hash
        digest = hmac.digest(self._cache_key, f"{record.gateway_id}\0{stored}\0{password}"
                             .encode(), hashlib.sha256)
        seen = self._verified.get(identity)
        if seen is None or not hmac.compare_digest(seen, digest):
            ok = (await asyncio.to_thread(check_password, password, stored)
                  if is_slow_hash(stored) else check_password(password, stored))
            if not ok:
                return self._refuse(conn, http.HTTPStatus.UNAUTHORIZED, identity,
                                    "wrong password")
            self._verified[identity] = digest
        return None

    async def _connection(self, conn: ServerConnection) -> None:
        identity = self._identity(conn.request.path if conn.request else "") or ""
        record = self.records.get(identity)
        if record is None or conn.subprotocol is None:
            reason = ("no supported OCPP subprotocol offered (supported: "
                      f"{', '.join(self.settings.subprotocols)})" if record else "not registered")
            self.refused += 1
            log.warning("OCPP connection of %r closed: %s", identity, reason)
            await conn.close(1002, reason[:120])
            return
        link = self.links.setdefault(identity, ChargePointLink(identity, record.gateway_id))
        station = Station(record, link, self.infra.clock, self._booted,
                          self.settings.heartbeat_interval_s)
        timeout = self.settings.call_timeout_s
        cp = (ChargePoint201(station, conn, timeout) if conn.subprotocol == "ocpp2.0.1"
              else ChargePoint16(station, conn, timeout))
        old = self.connections.get(identity)
        if old is not None:
            log.warning("charge point %s connected again: the previous connection is closed",
                        identity)
            await old.close(1000, "replaced by a new connection")
        self.connections[identity] = conn
        link.session = cp
        log.info("charge point %s connected (OCPP %s)", identity, cp.version)
        try:
            await cp.start()
        except ConnectionClosed as exc:
            log.info("charge point %s disconnected (%s)", identity, exc.rcvd or "no close frame")
        finally:
            if self.connections.get(identity) is conn:
                del self.connections[identity]
                link.session = None

    # -- the registry ---------------------------------------------------------------------
    async def _reload(self, identity: str) -> ChargePointRecord | None:
        """One charge point enrolled since the last sync (read on its first connection)."""
        records = await self.infra.db.run(load_charge_points, [identity])
        record = records.get(identity)
        if record is not None:
            self.records[identity] = record
        return record

    async def _booted(self, station: Station, detail: dict[str, str]) -> None:
        """Record the boot (with others arriving meanwhile: :class:`BootRecorder`), then
        attach the charge point's connectors to the poller."""
        record = await self.boots.record(station.record.gateway_id, station.identity, detail)
        if record is not None:
            self.records[record.identity] = record
            station.record = record
            self._attach(record)

    async def sync(self) -> None:
        """Follow the registry when the fleet revision moved (the daemon's ``ocpp`` loop)."""
        revision = await self.infra.db.run(fleet_revision)
        if revision == self._revision:
            return
        self.records = await self.infra.db.run(load_charge_points)
        self._revision = revision
        keep = {c.device_id: _Attached(r.gateway_id, c) for r in self.records.values()
                for c in r.connectors if c.status in LIVE}
        gone = [i for i, a in self._attached.items() if keep.get(i) != a]
        if gone:
            await self.fleet.detach(gone)
            for i in gone:
                del self._attached[i]
        for record in self.records.values():
            self._attach(record)
        for identity in [i for i in self.connections if i not in self.records]:
            log.warning("charge point %s is no longer registered (retired or removed): "
                        "disconnected", identity)
            await self.connections[identity].close(1000, "no longer registered")
        self._verified = {i: d for i, d in self._verified.items() if i in self.records}

    def _attach(self, record: ChargePointRecord) -> None:
        """Add the charge point's live connectors not polled yet to the poller."""
        link = self.links.setdefault(record.identity,
                                     ChargePointLink(record.identity, record.gateway_id))
        new = [c for c in record.connectors
               if c.status in LIVE and c.device_id not in self._attached
               and c.device_id not in self.fleet.poller.stats]
        if not new:
            return
        adapters = [OcppConnectorAdapter(
            link, device_id=c.device_id, connector_id=c.connector_id,
            rated_power_kw=c.rated_power_kw, min_setpoint_kw=c.min_setpoint_kw,
            max_setpoint_kw=c.max_setpoint_kw, policy=self.policy, clock=self.infra.clock)
            for c in new]
        # the poller's annotations name the Modbus types; it reads only what the adapter
        # protocol and ChargePointLink provide (device_id, kind, read_state, heartbeat,
        # active_setpoint_kw, _clock, energy_resolution_kwh; stats.requests, close)
        # the charge point has a poller unit only while one of its connectors is attached
        # here: a first boot adds one without scanning every unit (quadratic in a boot storm)
        polled = any(c.device_id in self._attached for c in record.connectors)
        unit = next((u for u in self.fleet.poller.gateways
                     if u.gateway_id == record.gateway_id), None) if polled else None
        if unit is not None:
            unit.adapters.extend(cast("list[ProfileAdapter]", adapters))
            for a in adapters:
                self.fleet.poller.stats[a.device_id] = DeviceStats(a.device_id)
        else:
            self.fleet.poller.add_gateway(record.gateway_id, cast(GatewayClient, link),
                                          cast("list[ProfileAdapter]", adapters))
        for a, c in zip(adapters, new, strict=True):
            self._attached[a.device_id] = _Attached(record.gateway_id, c)
        self.fleet.version += 1
        log.info("charge point %s: %d connector(s) polled", record.identity, len(new))
