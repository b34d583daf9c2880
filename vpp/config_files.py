"""Reading configuration files and reporting their errors: one line per problem, naming the
file, the key and the reason (:class:`vpp.errors.ConfigError`). Used by :mod:`vpp.config` and by
every other TOML reader (device profiles, programmes)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pydantic

from vpp.errors import ConfigError


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; :class:`ConfigError` naming the file (missing, unreadable, bad TOML)."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def first_error(exc: pydantic.ValidationError) -> str:
    """``key a.b.c: reason`` for the first error of a validation failure (one line)."""
    err = exc.errors()[0]
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    return f"key {_key(tuple(err['loc']))}: {msg.removeprefix('Value error, ')}"


def _key(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


def _has_path(data: Any, loc: tuple[Any, ...]) -> bool:
    for p in loc:
        if isinstance(data, dict) and p in data:
            data = data[p]
        elif isinstance(data, list) and isinstance(p, int) and p < len(data):
            data = data[p]
        else:
            return False
    return True


def describe_errors(exc: pydantic.ValidationError, files: list[tuple[str, dict[str, Any]]]) -> str:
    """One line per error: the file that holds the key (or the environment), key, reason."""
    lines = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        loc = tuple(err["loc"])
        origin = "VPP_* environment or defaults"
        for name, data in reversed(files):
            # the deepest prefix of the key that a file holds tells where it came from
            if any(_has_path(data, loc[:n]) for n in range(len(loc), 0, -1)):
                origin = name
                break
        lines.append(f"{origin}: key {_key(loc)}: {msg}")
    return "; ".join(lines)
