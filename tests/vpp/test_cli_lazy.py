"""The ``vpp`` command imports a sub-command's module only when it runs (vpp.cli.main.LazyGroup).

Before, vpp/cli/main.py imported every command module, and with them the scheduler (osqp,
scipy), matplotlib, the simulator and the daemon: 3.4 s of imports for every ``vpp`` call, even
``vpp --help`` (9-15 s on the loaded 2-core machine of the first-run test, which runs 16).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TypedDict

import pytest
import typer
from typer import _click as click  # typer vendors click: its groups and contexts are these types
from typer.core import TyperGroup

from tests.conftest import REPO_ROOT
from vpp.cli.main import COMMANDS, LazyGroup, app

HEAVY = ("cvxpy", "osqp", "scipy", "matplotlib", "lightgbm", "dask", "openleadr", "vpp.daemon",
         "vpp.scheduler", "sim")

PROBE = """
import json, sys
from vpp.cli.main import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {heavy_roots}
               or m.startswith(('vpp.daemon', 'vpp.scheduler')))
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


class Probe(TypedDict):
    """What PROBE prints: ``main``'s exit code and the heavy modules it imported."""

    code: int
    heavy: list[str]


def _run(*args: str) -> tuple[str, Probe]:
    roots = {h for h in HEAVY if "." not in h}
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy_roots=sorted(roots)), *args],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    return proc.stdout, json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [("--help",), ("config", "check", "config/default.toml")])
def test_help_and_config_check_import_no_heavy_module(args: tuple[str, ...]) -> None:
    out, probe = _run(*args)
    assert probe["code"] == 0, out
    assert probe["heavy"] == [], f"`vpp {' '.join(args)}` imported {probe['heavy'][:10]}"


def test_help_lists_every_command_with_its_own_help() -> None:
    out, _ = _run("--help")
    flat = " ".join(out.replace("│", " ").split())
    for c in COMMANDS:
        assert f"{c.name} {c.help[:40]}" in flat, c.name
    root = typer.main.get_command(app)
    assert isinstance(root, LazyGroup)
    ctx = click.Context(root)
    assert root.list_commands(ctx) == [c.name for c in COMMANDS]
    for c in COMMANDS:  # each loads, and the listed help line is the command's own
        command = root.get_command(ctx, c.name)
        assert command is not None and command.name == c.name
        assert command.get_short_help_str(limit=1000) == c.help, c.name
    config = root.get_command(ctx, "config")
    assert isinstance(config, TyperGroup)
    assert config.list_commands(ctx) == ["check"]  # a group of one
