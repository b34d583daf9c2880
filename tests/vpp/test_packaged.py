"""Packaged files load through one place (vpp.packaged), from any working directory; a directory
given in configuration overrides the packaged one; no reader builds a ``config/...`` path."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from bidding.programme import load_programme
from device_adapters.profile import list_profiles, load_profile
from sim.scenarios.scenario import load_scenario
from vpp import packaged
from vpp.config import load_settings
from vpp.errors import NotFoundError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("vpp", "bidding", "sim", "device_adapters", "forecasting")


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, with no VPP_* variables."""
    for k in [k for k in __import__("os").environ if k.upper().startswith("VPP_")]:
        monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_everything_packaged_loads_from_an_empty_directory(elsewhere: Path) -> None:
    s = load_settings()
    assert s.bidding.programmes_dir == packaged.programmes_dir()
    assert load_programme(s.bidding.programme, s.bidding.programmes_dir, date(2026, 7, 1))
    assert "keba-p30" in list_profiles() and load_profile("keba-p30").kind.value == "ev_charger"
    assert load_scenario("zhuzhou-2025").scenario.programme == "hunan-2026"
    demo = load_settings(packaged.DEMO_CONFIG)
    assert demo.owners and demo.enrolment.allow_loopback
    assert not list(elsewhere.iterdir())  # nothing was looked for or left here


def test_a_programmes_dir_in_configuration_overrides_the_packaged_one(elsewhere: Path) -> None:
    own = elsewhere / "mine"
    own.mkdir()
    text = (packaged.programmes_dir() / "hunan-2026.toml").read_text()
    (own / "hunan-local.toml").write_text(text.replace('name = "hunan-2026"', 'name = "hunan-local"'))
    (elsewhere / "site.toml").write_text('[bidding]\nprogramme = "hunan-local"\n'
                                         'programmes_dir = "mine"\n')
    s = load_settings("site.toml")
    assert s.bidding.programmes_dir == Path("mine")  # relative: to the working directory
    assert load_programme("hunan-local", s.bidding.programmes_dir, date(2026, 7, 1))
    with pytest.raises(NotFoundError, match="no programme 'hunan-local'"):
        load_programme("hunan-local", packaged.programmes_dir(), date(2026, 7, 1))


def test_the_packaged_files_are_the_repositorys_config_directory() -> None:
    """The design card keeps config/ at the top level; the wheel ships the same folder."""
    assert packaged.config_dir() == ROOT / "config"
    assert packaged.DEFAULT_CONFIG == ROOT / "config" / "default.toml"
    assert packaged.DEMO_CONFIG == ROOT / "config" / "zhuzhou-demo.toml"
    assert "config" in (ROOT / "pyproject.toml").read_text().split(
        "[tool.hatch.build.targets.wheel.force-include]")[1].split("[")[0]


def test_no_shipped_module_builds_a_config_path_of_its_own() -> None:
    """Readers ask vpp.packaged: a ``Path("config...")`` or ``/ "config" /`` elsewhere would
    work only from the repository's root (and never from a wheel)."""
    pattern = re.compile(r"""Path\(\s*["']config\b|/\s*["']config["']"""
                         r"""|["']config/(programmes|device_profiles|scenarios)/?["']""")
    found = []
    for pkg in SHIPPED:
        for py in (ROOT / pkg).rglob("*.py"):
            if py == ROOT / "vpp" / "packaged.py":
                continue
            for n, line in enumerate(py.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if pattern.search(code):
                    found.append(f"{py.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_a_missing_packaged_folder_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    fake = tmp_path / "vpp"
    shutil.copytree(ROOT / "vpp", fake, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(packaged, "__file__", str(fake / "packaged.py"))
    packaged.config_dir.cache_clear()
    try:
        with pytest.raises(Exception, match="packaged configuration is missing"):
            packaged.config_dir()
    finally:
        monkeypatch.undo()
        packaged.config_dir.cache_clear()
