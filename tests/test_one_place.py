"""One place for the market's time zone and interval (issue 17 item 4).

The zone's name is written once (``vpp.timeutil.DEFAULT_TIMEZONE``); everything else takes the
configured one (``service.timezone``, a programme's or scenario's ``timezone``). The market
interval comes from configuration (``service.market_interval_minutes``, a programme's
``measurement_interval_minutes``, a scenario's ``interval_minutes``) and is passed down: a
signature or model field defaulting to 15 minutes would silently disagree with a 30-minute
market. The defaults that remain are listed below (a ratchet: the list may only shrink, and an
entry that no longer exists must leave it).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("vpp", "bidding", "sim", "forecasting", "device_adapters")

#: interval defaults of 15 still in signatures or model fields. The interval comes from the
#: market calendar (vpp.calendar.MarketCalendar: from Settings, a programme or a scenario) or
#: its interval_minutes, passed in. Left: a stored column's server default (rows written
#: before the column existed were 15-minute plans).
REMAINING = {
    "vpp/models.py::DispatchPlan.interval_minutes",  # a stored column's server default
}

#: where the market interval's default IS the configuration (DEFAULT_INTERVAL_MINUTES, one
#: constant): the setting itself and the data files' models that own an interval
CONFIGURATION = {
    "vpp/config.py::ServiceSettings.market_interval_minutes": "the setting",
    "vpp/config.py::ForecastSettings.interval_minutes": "always the market interval (Settings)",
    "bidding/programme.py::ProgrammeVersion.measurement_interval_minutes": "a programme file's",
    "sim/scenarios/scenario.py::ScenarioMeta.interval_minutes": "a scenario file's",
}


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for pkg in SHIPPED:
        for py in sorted((ROOT / pkg).rglob("*.py")):
            out.append((py.relative_to(ROOT).as_posix(), ast.parse(py.read_text())))
    return out


def _default_value(node: ast.expr | None) -> object:
    """The constant a default or a ``Field(default, ...)`` / ``Field(default=...)`` holds
    (``DEFAULT_INTERVAL_MINUTES``, the configuration's default, counts as its 15)."""
    if isinstance(node, ast.Call):
        kw = {k.arg: k.value for k in node.keywords}
        node = node.args[0] if node.args else kw.get("default")
    if isinstance(node, ast.Name) and node.id == "DEFAULT_INTERVAL_MINUTES":
        return 15
    return node.value if isinstance(node, ast.Constant) else None


def _interval_defaults(path: str, tree: ast.AST, qual: str = "") -> list[str]:
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            a = node.args
            pos = a.posonlyargs + a.args
            pairs = list(zip(pos[len(pos) - len(a.defaults):], a.defaults, strict=True))
            pairs += [(x, d) for x, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d]
            found += [f"{path}::{qual}{node.name}({arg.arg})" for arg, d in pairs
                      if "minutes" in arg.arg and _default_value(d) == 15]
            found += _interval_defaults(path, node, f"{qual}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            found += [f"{path}::{qual}{node.name}.{st.target.id}" for st in node.body
                      if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)
                      and "minutes" in st.target.id and _default_value(st.value) == 15]
            found += _interval_defaults(path, node, f"{qual}{node.name}.")
    return found


def test_no_new_market_interval_default() -> None:
    found = {f for path, tree in _modules() for f in _interval_defaults(path, tree)}
    assert set(CONFIGURATION) <= found, sorted(set(CONFIGURATION) - found)
    found -= set(CONFIGURATION)
    new = sorted(found - REMAINING)
    assert not new, ("a 15-minute default: take the interval from configuration (service."
                     f"market_interval_minutes, the programme or the scenario): {new}")
    gone = sorted(REMAINING - found)
    assert not gone, f"fixed: remove these from REMAINING: {gone}"


def test_the_zone_name_is_written_once() -> None:
    where = [f"{path}:{n.lineno}" for path, tree in _modules() for n in ast.walk(tree)
             if isinstance(n, ast.Constant) and n.value == "Asia/Shanghai"]
    assert [w.split(":")[0] for w in where] == ["vpp/timeutil.py"], where


SEASON_NAMES = {"spring", "summer", "autumn", "winter"}
#: the one definition of which months are which season
SEASONS_HOME = "vpp/calendar.py"


def _is_months(node: ast.expr | None) -> bool:
    """A literal collection (tuple, list, set, ``frozenset({...})``/``set(...)``, ``range``)
    of month numbers 1-12."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
        if node.func.id == "range":
            return all(isinstance(a, ast.Constant) and isinstance(a.value, int)
                       for a in node.args)
        if node.func.id in ("frozenset", "set", "tuple"):
            node = node.args[0]
    if not isinstance(node, ast.Tuple | ast.List | ast.Set) or not node.elts:
        return False
    return all(isinstance(e, ast.Constant) and type(e.value) is int and 1 <= e.value <= 12
               for e in node.elts)


def _seasonal(name: str) -> bool:
    low = name.lower()
    return any(s in low for s in SEASON_NAMES | {"season"})


def _season_months(path: str, tree: ast.AST) -> list[str]:
    """Where ``tree`` ties a season to month numbers: a name or field mentioning a season bound
    to months, a dict keyed by a season name with months as values, or ``.month in (...)``."""
    out = []
    for n in ast.walk(tree):
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        line = 0
        if isinstance(n, ast.Assign):
            targets, value, line = n.targets, n.value, n.lineno
        elif isinstance(n, ast.AnnAssign):
            targets, value, line = [n.target], n.value, n.lineno
        for t in targets:
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) \
                else ""
            if _seasonal(name) and _is_months(value):
                out.append(f"{path}:{line} {name}")
        if isinstance(n, ast.Dict):
            out += [f"{path}:{n.lineno} {k.value!r}" for k, v in zip(n.keys, n.values, strict=True)
                    if isinstance(k, ast.Constant) and k.value in SEASON_NAMES and _is_months(v)]
        if (isinstance(n, ast.Compare) and isinstance(n.left, ast.Attribute)
                and n.left.attr == "month" and any(_is_months(c) for c in n.comparators)):
            out.append(f"{path}:{n.lineno} .month in (...)")
    return out


def test_the_seasons_are_defined_once() -> None:
    """"Summer" means one thing: which months are which season is written only in
    vpp.calendar.SeasonMonths; everything else asks a MarketCalendar (a programme or scenario
    with other seasons passes its own SeasonMonths, as data)."""
    where = [w for path, tree in _modules() for w in _season_months(path, tree)]
    assert sorted(w.split(":")[0] for w in where) == [SEASONS_HOME] * 4, where


def test_the_season_checker_finds_each_form() -> None:
    snippets = {
        "SUMMER_MONTHS = frozenset({5, 6, 7, 8, 9, 10})": 1,
        "SEASON_MONTHS = {'summer': (6, 7, 8, 9), 'winter': [12, 1, 2]}": 2,
        "def f(d):\n    return d.month in (6, 7, 8)\n": 1,
        "class S:\n    winter: tuple[int, ...] = (12, 1, 2)\n": 1,
        "heating_season = range(11, 13)": 1,
        "summer_factor = 1.0\nshape = {'summer': 0.5}\nhours = (6, 7, 8)": 0,
    }
    for code, n in snippets.items():
        assert len(_season_months("x.py", ast.parse(code))) == n, code
