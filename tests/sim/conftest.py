"""Fail any async test in this directory that leaves asyncio tasks running behind it."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_leaked_tasks(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("asyncio") is not None or _is_async(request):
        request.getfixturevalue("no_leaked_tasks")


def _is_async(request: pytest.FixtureRequest) -> bool:
    import inspect

    return inspect.iscoroutinefunction(getattr(request.node, "function", None))
