"""The packaged files, found in one place: the default configuration, the demo fleet, the
programmes, the device profiles and the simulation scenarios.

They live in the repository's top-level ``config/`` and ship in the wheel as the package data
``vpp/_config`` (``pyproject.toml``: hatch ``force-include``), so ``vpp`` finds them from any
working directory and from an installed wheel. In an installed wheel they are read through
:mod:`importlib.resources`; in a source checkout (an editable install has no ``vpp/_config``)
from the checkout's ``config/``. Every reader asks here; none builds a ``config/...`` path.

A directory set in configuration (``bidding.programmes_dir``, a scenario path, ``--config``)
overrides the packaged one; a relative path there is relative to the working directory.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from vpp.errors import ConfigError

#: the packaged files' folder inside the ``vpp`` package of a wheel
PACKAGE_DATA = "_config"


@cache
def config_dir() -> Path:
    """The folder that holds ``default.toml``, ``programmes/``, ``device_profiles/``, ..."""
    packaged = files("vpp").joinpath(PACKAGE_DATA)
    if packaged.is_dir():
        if not isinstance(packaged, Path):  # e.g. imported from a zip file
            raise ConfigError(f"the packaged configuration ({packaged}) is not on a file system; "
                              "install the wheel unpacked (pip/uv do)")
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "config"
    if not (checkout / "default.toml").is_file():
        raise ConfigError(
            f"the packaged configuration is missing: neither vpp/{PACKAGE_DATA} (a wheel) nor "
            f"{checkout} (a source checkout) holds default.toml; reinstall xiang-vpp")
    return checkout


def packaged_file(name: str) -> Path:
    """A file of the packaged configuration, e.g. ``default.toml``."""
    return config_dir() / name


def programmes_dir() -> Path:
    """The packaged programmes (``<name>.toml``), the default of ``bidding.programmes_dir``."""
    return config_dir() / "programmes"


def profiles_dir() -> Path:
    """The packaged device profiles (``<name>.toml``)."""
    return config_dir() / "device_profiles"


def scenarios_dir() -> Path:
    """The packaged simulation scenarios (``<name>.toml``)."""
    return config_dir() / "scenarios"


#: the shipped default configuration, always applied first (:func:`vpp.config.load_settings`)
DEFAULT_CONFIG = packaged_file("default.toml")
#: the Zhuzhou demo fleet (``vpp demo``, ``vpp sim gateways``), applied over the defaults
DEMO_CONFIG = packaged_file("zhuzhou-demo.toml")
