"""The layering, checked on the source (issue 17, "explicit dependencies").

* :mod:`vpp.api` depends on :mod:`vpp.daemon`, never the reverse: no module of ``vpp/daemon``
  imports ``vpp.api``, directly or through another first-party module.
* :mod:`vpp.domain` (the models both share) imports neither of them, nor the database.
* ``bidding/`` computation does not import the database (``sqlmodel``, ``sqlalchemy``,
  ``vpp.db``, the ORM tables in ``vpp.models``), directly or transitively. The modules that are
  storage edges are listed in :data:`BIDDING_DB_EDGES`, each with its reason; a new bidding module
  that needs the database has to be added there, on purpose.

Imports are read from the AST, so imports inside functions and under ``TYPE_CHECKING`` count too
(a deferred import is still a dependency); ``importlib.import_module("...")`` with a literal name
counts as well.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("vpp", "bidding", "forecasting", "device_adapters", "sim")
DB = ("sqlmodel", "sqlalchemy", "alembic", "psycopg", "vpp.db", "vpp.models")

#: bidding modules that are storage edges (module -> why it may touch the database). W1 is
#: splitting workflow's database loader from its pure core: when that lands, the loader module
#: replaces ``bidding.workflow`` here and the core must pass the check.
BIDDING_DB_EDGES: dict[str, str] = {
    "bidding.ledger": "posts bids, settlements and payouts to the ledger tables",
    "bidding.capacity_ledger": "reads a month's settlements and posts its capacity payment",
    "bidding.meter_frame": "reads the telemetry table into interval x device meter frames",
    "bidding.workflow": "loads an event's fleet, history and forecasts and stores the bid",
    "bidding.synthetic": "writes synthetic metered history into the telemetry table",
}


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imports_of(path: Path, root: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from a import b`` gives ``a`` and
    ``a.b``, since ``b`` may be a submodule)."""
    module = _module_name(path, root)
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node.level, node.module)
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names if a.name != "*")
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"):
            out.add(node.args[0].value)
    return out


class Graph:
    """First-party modules under ``root`` and what they import."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, Path] = {}
        for pkg in FIRST_PARTY:
            for path in sorted((root / pkg).rglob("*.py")):
                self.files[_module_name(path, root)] = path

    @cache  # noqa: B019 -- one graph per test run, modules are hashable names
    def direct(self, module: str) -> frozenset[str]:
        return frozenset(imports_of(self.files[module], self.root))

    def chain_to(self, start: str, banned: tuple[str, ...],
                 allowed: frozenset[str] = frozenset()) -> list[str] | None:
        """The import chain from ``start`` to a module in (or under) ``banned``, following
        first-party modules except ``allowed`` ones, or None."""
        seen = {start}
        stack: list[list[str]] = [[start]]
        while stack:
            chain = stack.pop()
            for dep in sorted(self.direct(chain[-1])):
                if any(dep == b or dep.startswith(b + ".") for b in banned):
                    return [*chain, dep]
                if dep in self.files and dep not in seen and dep not in allowed:
                    seen.add(dep)
                    stack.append([*chain, dep])
        return None


def layer_violations(root: Path) -> list[str]:
    """Every breach of the layering under ``root``, as readable import chains."""
    g = Graph(root)
    out: list[str] = []
    for module in g.files:
        if module.startswith("vpp.daemon"):
            chain = g.chain_to(module, ("vpp.api",))
            if chain:
                out.append("daemon imports the API: " + " -> ".join(chain))
        if module.startswith("vpp.domain"):
            chain = g.chain_to(module, ("vpp.api", "vpp.daemon", *DB))
            if chain:
                out.append("domain imports a layer above it: " + " -> ".join(chain))
        if module.startswith("bidding.") and module not in BIDDING_DB_EDGES:
            chain = g.chain_to(module, DB, allowed=frozenset())
            if chain:
                out.append("bidding computation imports the database: " + " -> ".join(chain))
    return out


def test_layers_hold_in_this_tree() -> None:
    assert layer_violations(REPO) == []


def test_bidding_edges_exist() -> None:
    """An allow-list entry for a module that is gone (renamed by a split) is removed, not kept."""
    g = Graph(REPO)
    assert set(BIDDING_DB_EDGES) <= set(g.files)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for pkg in FIRST_PARTY:
        (tmp_path / pkg).mkdir(exist_ok=True)
    return tmp_path


@pytest.mark.parametrize(("files", "expected"), [
    # a deferred import in a daemon function is still a dependency on the API
    ({"vpp/daemon/a.py": "def f():\n    from vpp.api.schemas import X\n",
      "vpp/api/schemas.py": ""}, "daemon imports the API: vpp.daemon.a -> vpp.api.schemas"),
    # relative, and through another first-party module
    ({"vpp/daemon/a.py": "from . import b\n", "vpp/daemon/b.py": "from ..api import app\n"},
     "daemon imports the API: vpp.daemon.a -> vpp.daemon.b -> vpp.api"),
    ({"vpp/daemon/a.py": "from vpp import api\n"}, "daemon imports the API: vpp.daemon.a -> vpp.api"),
    ({"vpp/domain/m.py": "import vpp.daemon.intake\n"},
     "domain imports a layer above it: vpp.domain.m -> vpp.daemon.intake"),
    ({"vpp/domain/m.py": "from vpp.models import Device\n"},
     "domain imports a layer above it: vpp.domain.m -> vpp.models"),
    # a computation module reaching the database through a storage edge counts
    ({"bidding/offer.py": "from bidding.ledger import post\n",
      "bidding/ledger.py": "from sqlmodel import Session\n"},
     "bidding computation imports the database: bidding.offer -> bidding.ledger -> sqlmodel"),
    ({"bidding/rules.py": "import importlib\nimportlib.import_module('vpp.db')\n"},
     "bidding computation imports the database: bidding.rules -> vpp.db"),
])
def test_checker_finds_each_breach(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    assert expected in layer_violations(_tree(tmp_path, files))


def test_checker_allows_the_edges_and_the_right_direction(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "bidding/ledger.py": "from sqlmodel import Session\n",
        "vpp/api/app.py": "from vpp.daemon.intake import Intake\n",
        "vpp/daemon/intake.py": "from vpp.domain.grid_calls import GridCallIn\n",
        "vpp/domain/grid_calls.py": "from vpp.domain.base import InModel\n",
        "vpp/models.py": "from vpp.domain.grid_calls import EventStatus\n",
    })
    assert layer_violations(root) == []
