"""One ``DispatchPlan`` name per meaning (issue 17): the stored plan is the
:class:`vpp.models.DispatchPlan` table; the scheduler's result of one solve is
:class:`vpp.scheduler.plan.SolvedPlan`. No shipped module defines a second class of either name
(two classes of one name made ``DispatchPlan`` mean a table row in the daemon and an in-memory
solve in the scheduler)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("vpp", "bidding", "sim", "forecasting", "device_adapters")


def test_each_plan_class_is_defined_once() -> None:
    defs: dict[str, list[str]] = {"DispatchPlan": [], "SolvedPlan": []}
    pattern = re.compile(r"^class\s+(DispatchPlan|SolvedPlan)\b", re.M)
    for pkg in SHIPPED:
        for py in (ROOT / pkg).rglob("*.py"):
            for m in pattern.finditer(py.read_text(encoding="utf-8")):
                defs[m.group(1)].append(str(py.relative_to(ROOT)))
    assert defs == {"DispatchPlan": ["vpp/models.py"], "SolvedPlan": ["vpp/scheduler/plan.py"]}
