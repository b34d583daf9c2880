"""Which hosts and ports owners' gateways may be on (``[enrolment]`` in the configuration).

An owner types the gateway's host; the daemon then opens Modbus TCP connections to it. Without a
policy that is a way to make the aggregator connect anywhere (its own services, the cloud
metadata address, other customers' networks). :meth:`HostPolicy.check` is applied at enrolment,
at every edit (CLI, API, ``import-fleet``) and again before the daemon or a probe connects (a
name may resolve elsewhere later).

Rules, for every address the host resolves to (a literal address is its own resolution):

* multicast, unspecified (``0.0.0.0``, ``::``), limited broadcast and reserved addresses:
  always refused (nothing to connect to);
* loopback (``127.0.0.0/8``, ``::1``): refused unless ``allow_loopback`` (simulated gateways);
* link-local (``169.254.0.0/16``, ``fe80::/10``): refused unless ``allow_link_local``;
* the aggregator's own interface addresses: refused unless ``allow_own_addresses``;
* anything else must be inside ``allowed_networks`` (default: the private ranges).

The port must be in ``allowed_ports``. Resolution is blocking (``getaddrinfo``): call
:meth:`HostPolicy.check` from a thread in async code (:meth:`HostPolicy.check_async`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass, field

from vpp.config import EnrolmentSettings
from vpp.errors import ValidationError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
LOOPBACK_HINT = ("set enrolment.allow_loopback = true (environment: "
                 "VPP_ENROLMENT__ALLOW_LOOPBACK=true) to enrol simulated gateways")


def own_addresses() -> frozenset[Address]:
    """This machine's interface addresses (all families), from psutil."""
    import psutil

    out: set[Address] = set()
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    out.add(_plain(ipaddress.ip_address(a.address.split("%", 1)[0])))
                except ValueError:
                    continue
    return frozenset(out)


def _plain(addr: Address) -> Address:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) as the IPv4 address it carries."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def check_host_syntax(host: str) -> None:
    """An IP address or an RFC 1123 host name; anything else (URLs, spaces) is refused."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253 or not all(_LABEL.match(p) for p in name.split(".")):
        raise ValidationError(f"gateway host {host!r} is not an IP address or a host name")


@dataclass(frozen=True)
class HostPolicy:
    networks: tuple[Network, ...]
    ports: tuple[tuple[int, int], ...]
    allow_loopback: bool = False
    allow_link_local: bool = False
    allow_own_addresses: bool = False
    own: frozenset[Address] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, s: EnrolmentSettings) -> HostPolicy:
        """The policy of ``s``, with this machine's addresses read now."""
        ports = []
        for item in s.allowed_ports:
            lo, _, hi = item.partition("-")
            ports.append((int(lo), int(hi or lo)))
        return cls(tuple(ipaddress.ip_network(n) for n in s.allowed_networks), tuple(ports),
                   s.allow_loopback, s.allow_link_local, s.allow_own_addresses,
                   own_addresses())

    def refusal(self, addr: Address) -> str | None:
        """Why the address is refused, or ``None`` when it is allowed."""
        a = _plain(addr)
        if a.is_unspecified or a.is_multicast or a == _BROADCAST:
            return f"{a} is a multicast, unspecified or broadcast address"
        if a.is_loopback:
            return None if self.allow_loopback else f"{a} is a loopback address ({LOOPBACK_HINT})"
        if a.is_link_local:
            return None if self.allow_link_local else (
                f"{a} is a link-local address (set enrolment.allow_link_local = true to allow)")
        if a.is_reserved:
            return f"{a} is a reserved address"
        if a in self.own and not self.allow_own_addresses:
            return f"{a} is an address of the aggregator itself"
        if not any(a.version == n.version and a in n for n in self.networks):
            nets = ", ".join(str(n) for n in self.networks) or "none"
            return f"{a} is not in the allowed networks (enrolment.allowed_networks: {nets})"
        return None

    def check_port(self, port: int) -> None:
        if not any(lo <= port <= hi for lo, hi in self.ports):
            allowed = ", ".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in self.ports)
            raise ValidationError(
                f"gateway port {port} is not allowed (enrolment.allowed_ports: {allowed})")

    def check(self, host: str, port: int) -> list[Address]:
        """Resolve ``host`` and refuse it (:class:`ValidationError`, the first reason) unless
        every address and the port are allowed; returns the addresses."""
        check_host_syntax(host)
        self.check_port(port)
        addrs = resolve(host, port)
        for a in addrs:
            reason = self.refusal(a)
            if reason is not None:
                shown = "" if str(a) == host else f" (resolves to {a})"
                raise ValidationError(f"gateway host {host!r}{shown} refused: {reason}")
        return addrs

    async def check_async(self, host: str, port: int) -> list[Address]:
        return await asyncio.to_thread(self.check, host, port)


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to (TCP); :class:`ValidationError` if it does not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise ValidationError(f"gateway host {host!r} does not resolve: {exc}") from None
    out: list[Address] = []
    for info in infos:
        a = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if a not in out:
            out.append(a)
    if not out:
        raise ValidationError(f"gateway host {host!r} does not resolve to any address")
    return out
