"""One source for configuration defaults: the shipped ``default.toml`` and the settings models agree.

Every key in the file exists in the models with the same default (compared after validation, so
``"data"`` and ``Path("data")`` agree); every model field with a default appears in the file,
either as a key or, where TOML cannot hold the default (``None``), as a commented-out example
``# key = ...``. The exceptions are listed with their reason.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from pydantic import BaseModel

from vpp.config import Settings
from vpp.packaged import packaged_file

#: model fields that are absent from default.toml on purpose, with the reason
NOT_IN_FILE = {
    "owners": "the fleet is enrolled per installation (zhuzhou-demo.toml for the demo), no default",
    "bidding.programmes_dir": "default: the packaged programmes (vpp.packaged); a directory set "
                              "in a file overrides them",
    "forecasting.interval_minutes": "always the market interval, service.market_interval_minutes",
}


def _file() -> tuple[dict[str, Any], str]:
    path = packaged_file("default.toml")
    text = path.read_text()
    return tomllib.loads(text), text


def _leaves(data: dict[str, Any], model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted keys of ``data``, descending into tables that are settings sections."""
    out = []
    for key, value in data.items():
        assert key in model.model_fields, f"default.toml: key {prefix}{key} is not in the models"
        ann = model.model_fields[key].annotation
        if isinstance(value, dict) and isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _leaves(value, ann, f"{prefix}{key}.")
        else:
            out.append(prefix + key)
    return out


def _fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of every model field with a default, descending into sections."""
    out = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _fields(ann, f"{prefix}{name}.")
        elif not info.is_required():
            out.append(prefix + name)
    return out


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _no_env(monkeypatch: Any) -> None:
    import os

    for k in list(os.environ):
        if k.upper().startswith("VPP_"):
            monkeypatch.delenv(k)


def test_every_key_in_default_toml_has_the_models_default(monkeypatch: Any) -> None:
    _no_env(monkeypatch)
    data, _ = _file()
    from_file, from_models = Settings(**data), Settings()
    keys = _leaves(data, Settings)
    assert len(keys) > 80  # the walk reached the sections
    wrong = {k: (_get(from_file, k), _get(from_models, k)) for k in keys
             if _get(from_file, k) != _get(from_models, k)}
    assert not wrong, f"default.toml (file, model) disagree: {wrong}"


def test_every_model_default_appears_in_default_toml(monkeypatch: Any) -> None:
    _no_env(monkeypatch)
    data, text = _file()
    in_file = set(_leaves(data, Settings))
    defaults = Settings()
    missing = []
    for dotted in _fields(Settings):
        if dotted in in_file or dotted in NOT_IN_FILE:
            continue
        section, _, key = dotted.rpartition(".")
        # a default TOML cannot write (None) appears as a commented example in its section
        commented = re.search(rf"^#\s*{re.escape(key)}\s*=", _section_text(text, section), re.M)
        if _get(defaults, dotted) is None and commented:
            continue
        missing.append(dotted)
    assert not missing, f"model defaults not in default.toml: {missing}"


def test_the_exceptions_are_real() -> None:
    """Each listed exception names a model field that really is absent from the file."""
    data, _ = _file()
    in_file = set(_leaves(data, Settings))
    fields = set(_fields(Settings)) | {"owners"}
    for name in NOT_IN_FILE:
        assert name in fields and name not in in_file, name


def _section_text(text: str, section: str) -> str:
    """The lines of ``[section]`` in default.toml (up to the next table header)."""
    if not section:
        head = re.split(r"^\[", text, maxsplit=1, flags=re.M)[0]
        return head
    m = re.search(rf"^\[{re.escape(section)}\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    return m.group(1) if m else ""


def test_the_forecast_steps_by_the_one_market_interval(tmp_path: Any, monkeypatch: Any) -> None:
    """One market interval: setting service.market_interval_minutes moves the forecast's step;
    a forecasting.interval_minutes that disagrees is refused with the reason."""
    import pytest

    from vpp.config import load_settings
    from vpp.errors import ConfigError

    _no_env(monkeypatch)
    assert load_settings().forecasting.interval_minutes == 15
    cfg = tmp_path / "thirty.toml"
    cfg.write_text("[service]\nmarket_interval_minutes = 30\n")
    assert load_settings(cfg).forecasting.interval_minutes == 30
    monkeypatch.setenv("VPP_SERVICE__MARKET_INTERVAL_MINUTES", "5")
    assert load_settings().forecasting.interval_minutes == 5
    monkeypatch.delenv("VPP_SERVICE__MARKET_INTERVAL_MINUTES")
    cfg.write_text("[forecasting]\ninterval_minutes = 30\n")
    with pytest.raises(ConfigError, match="differs from the market interval"):
        load_settings(cfg)
    cfg.write_text("[service]\nmarket_interval_minutes = 30\n[forecasting]\ninterval_minutes = 30\n")
    assert load_settings(cfg).forecasting.interval_minutes == 30
