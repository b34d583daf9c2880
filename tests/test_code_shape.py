"""The code's shape, checked on the source (issue 17, "Done when").

* No module over :data:`MAX_MODULE_LINES` lines in any package, the benchmarks or the tests.
* No function over :data:`MAX_FUNCTION_LINES` lines in the event-lifecycle core (intake,
  bidding, planning, dispatch, settlement: the files in :data:`LIFECYCLE_CORE`), so that each
  step reads at once. A function's length is ``end_lineno - lineno + 1`` of its ``def`` (the
  docstring counts; decorators do not); nested functions are measured too, by qualified name.

The functions still over the limit are listed in :data:`LONG_FUNCTIONS` with their length today
as a cap (a ratchet, like ``REMAINING`` in ``tests/test_one_place.py``): no new entry, no entry
may grow past its cap, and one that is fixed (at or under the limit, or gone) must leave the list.

mypy checks the tests too (``files`` in pyproject.toml's ``[tool.mypy]``). The test modules not
yet type-clean are listed in its one ``[[tool.mypy.overrides]]`` block with ``ignore_errors``, a
ratchet: the list may only shrink (at most :data:`MYPY_IGNORED_CAP` entries), and every entry must
name a module that exists (a stale entry fails). Whether a listed module is clean by now is not
checked here (that needs a mypy run): run ``mypy`` without the entry to find out.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
#: every package, the benchmark scripts and the tests
SIZED = ("vpp", "forecasting", "bidding", "device_adapters", "sim", "benchmarks", "tests")
#: the event-lifecycle core (globs relative to the repository root)
LIFECYCLE_CORE = (
    "bidding/*.py",
    "forecasting/owners.py",
    "forecasting/baselines.py",
    "vpp/scheduler/call_target.py",
    "vpp/daemon/*.py",
    "sim/aggregator.py",
    "sim/season.py",
)

#: functions of the lifecycle core still over MAX_FUNCTION_LINES -> their length today (a cap);
#: empty since compute_baseline was split into its day selection, rule and adjustment
LONG_FUNCTIONS: dict[str, int] = {}

#: most test modules mypy may skip (the ratchet list's length today; lower it as modules are
#: fixed, never raise it: a new test module must be type-clean)
MYPY_IGNORED_CAP = 0


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def _core_files() -> list[Path]:
    files: list[Path] = []
    for pattern in LIFECYCLE_CORE:
        matched = sorted(ROOT.glob(pattern))
        assert matched, f"{pattern} matches no file: update LIFECYCLE_CORE"
        files += matched
    return files


def function_lengths(tree: ast.AST, prefix: str = "") -> dict[str, int]:
    """Every function and method in ``tree`` (nested ones too) -> its length in lines, keyed by
    qualified name (``Class.method``, ``outer.inner``)."""
    out: dict[str, int] = {}
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            out[name] = (node.end_lineno or node.lineno) - node.lineno + 1
            out |= function_lengths(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            out |= function_lengths(node, f"{prefix}{node.name}.")
    return out


def long_functions() -> dict[str, int]:
    """The lifecycle core's functions over the limit -> their length."""
    found: dict[str, int] = {}
    for path in _core_files():
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), rel)
        found |= {f"{rel}::{name}": n for name, n in function_lengths(tree).items()
                  if n > MAX_FUNCTION_LINES}
    return found


def test_no_module_over_500_lines() -> None:
    modules = [p for pkg in SIZED for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert len(modules) > 100, "the packages were not found"
    over = {p.relative_to(ROOT).as_posix(): n for p in modules
            if (n := _lines(p)) > MAX_MODULE_LINES}
    assert not over, (f"modules over {MAX_MODULE_LINES} lines (split them by concept): {over}")


def test_no_new_long_function_in_the_lifecycle_core() -> None:
    found = long_functions()
    new = {k: n for k, n in found.items() if k not in LONG_FUNCTIONS}
    assert not new, (f"functions over {MAX_FUNCTION_LINES} lines in the event-lifecycle core "
                     f"(split them into well-named steps): {new}")
    grown = {k: (LONG_FUNCTIONS[k], n) for k, n in found.items()
             if k in LONG_FUNCTIONS and n > LONG_FUNCTIONS[k]}
    assert not grown, f"listed long functions that grew (was, now): {grown}"
    fixed = sorted(set(LONG_FUNCTIONS) - set(found))
    assert not fixed, f"fixed (or gone): remove these from LONG_FUNCTIONS: {fixed}"


def test_function_length_counts_the_whole_def() -> None:
    """The measure itself: a docstring and body count, nested functions and methods are found."""
    body = "\n".join(f"    x{i} = {i}" for i in range(77))
    src = (f'def long():\n    """Doc."""\n{body}\n    return 0\n\n\n'
           "class C:\n    @staticmethod\n    def m():\n        def inner():\n"
           "            return 1\n        return inner()\n")
    lengths = function_lengths(ast.parse(src))
    assert lengths == {"long": 80, "C.m": 4, "C.m.inner": 2}
    assert function_lengths(ast.parse(src.replace("    return 0\n", "    y = 1\n    return 0\n"))
                            )["long"] == 81


def mypy_ignored_modules() -> list[str]:
    """The modules pyproject.toml's ``[[tool.mypy.overrides]]`` blocks set ``ignore_errors`` for."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    modules: list[str] = []
    for override in config.get("overrides", []):
        if override.get("ignore_errors"):
            listed = override["module"]
            modules += [listed] if isinstance(listed, str) else listed
    return modules


def test_mypy_checks_the_tests_and_its_ratchet_list_only_shrinks() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert set(SIZED) <= set(config["files"]), "mypy must check every package and the tests"
    ignored = mypy_ignored_modules()
    assert len(ignored) <= MYPY_IGNORED_CAP, (
        f"{len(ignored)} modules skipped by mypy, cap {MYPY_IGNORED_CAP}: fix the new module's "
        "types instead of listing it")
    assert len(set(ignored)) == len(ignored), "a module is listed twice"
    not_tests = [m for m in ignored if not m.startswith("tests.")]
    assert not not_tests, f"only test modules may skip mypy: {not_tests}"
    stale = [m for m in ignored
             if not (ROOT / (m.replace(".", "/") + ".py")).is_file()
             and not (ROOT / m.replace(".", "/") / "__init__.py").is_file()]
    assert not stale, f"no such module (renamed or gone): remove from [[tool.mypy.overrides]]: {stale}"
