"""Configuration: defaults, the demo file, environment overrides, and precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpp.config import Settings, load_settings
from vpp.errors import ConfigError

DEVICE = """
[[owners]]
name = "o"
  [[owners.sites]]
  name = "s"
    [[owners.sites.gateways]]
    host = "127.0.0.1"
    port = 1502
      [[owners.sites.gateways.devices]]
      name = "d1"
      kind = "{kind}"
      unit_id = 1
      profile = "p"
      rated_power_kw = {rated}
      min_setpoint_kw = {lo}
      max_setpoint_kw = {hi}
      params = {params}
"""


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch, repo_root: Path) -> None:
    monkeypatch.chdir(repo_root)
    for k in list(__import__("os").environ):
        if k.startswith("VPP_"):
            monkeypatch.delenv(k)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_and_demo_load() -> None:
    s = load_settings()
    assert s.service.timezone == "Asia/Shanghai"
    assert s.service.market_interval_minutes == 15
    assert s.api.host == "127.0.0.1"
    assert s.effective_database_url == "sqlite:///data/vpp.sqlite3"
    demo = load_settings("config/zhuzhou-demo.toml")
    kinds = {d.kind.value for o in demo.owners for st in o.sites for g in st.gateways for d in g.devices}
    assert kinds == {"commercial_building", "industrial_load", "ev_charger", "battery"}


def test_environment_overrides_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPP_DATABASE_URL", "postgresql://u@127.0.0.1:5432/x")
    monkeypatch.setenv("VPP_API__PORT", "9123")
    s = load_settings("config/zhuzhou-demo.toml")
    assert s.effective_database_url == "postgresql://u@127.0.0.1:5432/x"
    assert s.api.port == 9123


def test_bad_environment_value_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPP_API__PORT", "not-a-port")
    with pytest.raises(ConfigError, match=r"key api\.port"):
        load_settings()


@pytest.mark.parametrize(
    ("kind", "rated", "lo", "hi", "params", "expected"),
    [
        ("toaster", 10, 0, 5, "{}", r"devices\[0\]\.kind: unknown device kind 'toaster'"),
        ("industrial_load", 10, 6, 5, "{}", r"inverted limits: min_setpoint_kw=6"),
        ("industrial_load", 10, -1, 5, "{}", r"negative limit min_setpoint_kw=-1"),
        ("ev_charger", 10, 0, 50, "{}", r"exceed rated_power_kw=10"),
        ("battery", 10, -5, 5, "{ capacity_kwh = 10, soc_min_pct = 90, soc_max_pct = 20 }",
         r"state-of-charge limits inverted"),
        ("battery", 10, -5, 5, "{}", r"params\.capacity_kwh: Field required"),
        ("commercial_building", 10, 0, 5, "{ colour = 'red' }", r"params\.colour: unknown key"),
    ],
)
def test_invalid_device_names_file_key_and_reason(
    tmp_path: Path, kind: str, rated: float, lo: float, hi: float, params: str, expected: str
) -> None:
    path = write(tmp_path, DEVICE.format(kind=kind, rated=rated, lo=lo, hi=hi, params=params))
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: key owners[0].sites[0].gateways[0].devices[0]")
    assert __import__("re").search(expected, msg), msg
    assert "\n" not in msg


def test_duplicate_unit_id_on_gateway(tmp_path: Path) -> None:
    one = DEVICE.format(kind="ev_charger", rated=7, lo=0, hi=7, params="{}")
    dup = one + one.split("[[owners.sites.gateways.devices]]", 1)[1].join(
        ["      [[owners.sites.gateways.devices]]", ""]
    )
    path = write(tmp_path, dup)
    with pytest.raises(ConfigError, match="duplicate unit id 1 on gateway 127.0.0.1:1502"):
        load_settings(path)


def test_unknown_key_and_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"c\.toml: key service\.colour: unknown key"):
        load_settings(write(tmp_path, "[service]\ncolour = 'red'\n"))
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        load_settings(write(tmp_path, "[service]\ntimezone = 'Mars/Olympus'\n"))
    with pytest.raises(ConfigError, match="must divide an hour"):
        load_settings(write(tmp_path, "[service]\nmarket_interval_minutes = 7\n"))


def test_syntax_error_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"c\.toml: not valid TOML: .*line 1"):
        load_settings(write(tmp_path, "[service\n"))
    with pytest.raises(ConfigError, match="nope.toml: file not found"):
        load_settings(tmp_path / "nope.toml")


def test_settings_are_plain_objects() -> None:
    # no hidden global: two loads are independent objects
    assert load_settings() is not load_settings()
    assert isinstance(load_settings(), Settings)
