"""The gateway host policy (``[enrolment]``, issue 23): which hosts and ports owners' gateways
may be on, on the shipped default configuration and with loopback allowed (simulators)."""

from __future__ import annotations

import ipaddress

import pytest

from vpp.config import EnrolmentSettings, load_settings
from vpp.errors import ConfigError, ValidationError
from vpp.gateway_hosts import HostPolicy, own_addresses


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped files only: no VPP_* override of the caller's."""
    import os

    for k in list(os.environ):
        if k.startswith("VPP_"):
            monkeypatch.delenv(k)


def shipped() -> HostPolicy:
    """The policy of config/default.toml (what a fresh install runs)."""
    return HostPolicy.from_settings(load_settings().enrolment)


@pytest.mark.parametrize("host", ["10.1.2.3", "172.16.0.9", "192.168.1.20", "100.64.3.4",
                                  "fd12:3456::1"])
def test_private_networks_are_allowed_by_default(host: str) -> None:
    assert shipped().check(host, 502) == [ipaddress.ip_address(host)]


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback address .*VPP_ENROLMENT__ALLOW_LOOPBACK=true"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "127.0.0.1 is a loopback"),  # IPv4-mapped: not a way round
        ("localhost", r"'localhost' \(resolves to .*\) refused: .*loopback"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("8.8.8.8", r"not in the allowed networks \(enrolment.allowed_networks: 10.0.0.0/8"),
        ("http://10.0.0.1", "not an IP address or a host name"),
        ("10.0.0.1 ; rm", "not an IP address or a host name"),
        ("no-such-host.invalid", "does not resolve"),
    ],
)
def test_refused_by_default_with_the_reason(host: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        shipped().check(host, 502)


def test_ports_are_limited_to_modbus_and_unprivileged() -> None:
    assert shipped().check("10.0.0.1", 1502)
    for bad in (22, 80, 443):
        with pytest.raises(ValidationError, match=f"port {bad} is not allowed"):
            shipped().check("10.0.0.1", bad)


def test_loopback_and_link_local_only_when_allowed() -> None:
    policy = HostPolicy.from_settings(EnrolmentSettings(allow_loopback=True))
    assert policy.check("127.0.0.1", 15021) and policy.check("localhost", 15021)
    with pytest.raises(ValidationError, match="link-local"):
        policy.check("169.254.1.1", 502)
    ll = HostPolicy.from_settings(EnrolmentSettings(allow_link_local=True))
    assert ll.check("169.254.1.1", 502)
    with pytest.raises(ValidationError, match="loopback"):
        ll.check("127.0.0.1", 502)


def test_the_aggregators_own_addresses_are_refused() -> None:
    assert ipaddress.ip_address("127.0.0.1") in own_addresses()  # read from the interfaces
    base = HostPolicy.from_settings(EnrolmentSettings())
    mine = HostPolicy(base.networks, base.ports, own=frozenset({ipaddress.ip_address("10.9.9.9")}))
    with pytest.raises(ValidationError, match="10.9.9.9 is an address of the aggregator itself"):
        mine.check("10.9.9.9", 502)
    assert mine.check("10.9.9.8", 502)
    allowed = HostPolicy(base.networks, base.ports, allow_own_addresses=True, own=mine.own)
    assert allowed.check("10.9.9.9", 502)


def test_bad_settings_are_config_errors(tmp_path) -> None:  # noqa: ANN001
    cfg = tmp_path / "c.toml"
    cfg.write_text('[enrolment]\nallowed_networks = ["10.0.0.0/33"]\n')
    with pytest.raises(ConfigError, match="enrolment.allowed_networks: .*not a network"):
        load_settings(cfg)
    cfg.write_text('[enrolment]\nallowed_ports = ["70000"]\n')
    with pytest.raises(ConfigError, match="enrolment.allowed_ports: .*not a port"):
        load_settings(cfg)


def test_the_demo_configuration_allows_its_loopback_fleet() -> None:
    assert load_settings("config/zhuzhou-demo.toml").enrolment.allow_loopback
    assert not load_settings().enrolment.allow_loopback
