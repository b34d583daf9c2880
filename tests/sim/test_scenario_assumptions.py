"""Assumptions in the open (issue 18 item 6): every population and participation rate of the
grounded scenario names its source (``[plan]``, ``[grid]``, ``[rules]``) or says ASSUMPTION, on
its own line or in the comment lines straight below it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SCENARIO = Path(__file__).resolve().parents[2] / "config" / "scenarios" / "zhuzhou-2025.toml"
KEYS = ("population", "enrolled_share")
TAGGED = re.compile(r"ASSUMPTION|\[plan\]|\[grid\]|\[rules\]")


def untagged(text: str) -> list[str]:
    """``segment.key`` of each population / enrolled share without a source or ASSUMPTION."""
    lines = text.splitlines()
    out, segment = [], "?"
    for i, line in enumerate(lines):
        if m := re.match(r'name\s*=\s*"([^"]+)"', line):
            segment = m.group(1)
        key = line.split("=")[0].strip()
        if key not in KEYS:
            continue
        note = line.partition("#")[2]
        k = i + 1
        while k < len(lines) and lines[k].lstrip().startswith("#") and lines[k].startswith(" "):
            note += lines[k]
            k += 1
        if not TAGGED.search(note):
            out.append(f"{segment}.{key}")
    return out


def test_every_population_and_rate_names_its_source_or_says_assumption():
    text = SCENARIO.read_text(encoding="utf-8")
    assert text.count("enrolled_share =") >= 10
    assert untagged(text) == []


@pytest.mark.parametrize("line", ["enrolled_share = 0.5", "enrolled_share = 0.5  # likely"])
def test_an_unsourced_rate_is_found(line):
    assert untagged(f'name = "x"\n{line}\n') == ["x.enrolled_share"]
