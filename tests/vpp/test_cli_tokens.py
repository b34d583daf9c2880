"""``vpp owner token`` / ``vpp token``: expiry shown when issued and listed, rotation, revocation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import run_cli as run


def _expiry(text: str) -> datetime:
    m = re.search(r"expires (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", text)
    assert m, text
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def test_tokens_show_expiry_rotate_and_revoke(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "owner", "add", "Shennong Mall")[0] == 0
    now = datetime.now(UTC)
    code, out, _ = run(capsys, "owner", "token", "Shennong Mall", "--label", "app")
    assert code == 0 and out.splitlines()[-1].startswith("vpp_")
    assert out.startswith("token 1 for owner Shennong Mall, expires ")
    # the shipped default configuration: owner tokens live 180 days
    assert abs(_expiry(out) - (now + timedelta(days=180))) < timedelta(minutes=2)
    code, out, _ = run(capsys, "token", "create", "--role", "grid", "--label", "dispatch")
    assert code == 0 and abs(_expiry(out) - (now + timedelta(days=365))) < timedelta(minutes=2)

    code, out, err = run(capsys, "token", "rotate", "1")
    assert code == 0, err
    new_token = out.splitlines()[-1]
    assert new_token.startswith("vpp_")
    m = re.search(r"token 3 \(owner\) replaces token 1, expires .* UTC; token 1 stops working at "
                  r"(\S+ \S+) UTC", out.replace("\n", " "))
    assert m, out
    stops = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert abs(stops - (now + timedelta(hours=168))) < timedelta(minutes=2)  # the default grace

    code, out, err = run(capsys, "token", "rotate", "1")
    assert code != 0 and "token 1 was already rotated (its replacement is token 3)" in err

    code, out, err = run(capsys, "token", "rotate", "2", "--grace-hours", "0")
    assert code == 0, err
    assert run(capsys, "token", "revoke", "3")[0] == 0
    code, out, _ = run(capsys, "token", "list")
    assert code == 0
    rows = {ln.split("│")[1].strip(): ln for ln in out.splitlines() if ln.count("│") > 5}
    assert "rotated -> 3" in rows["1"]
    assert "expired" in rows["2"]           # rotated with no grace: stopped at once
    assert "revoked" in rows["3"]
    assert "active" in rows["4"]            # the grid token's replacement
    assert new_token not in out


def test_rotate_unknown_token_is_a_clear_error(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    code, _, err = run(capsys, "token", "rotate", "42")
    assert code != 0 and err.strip() == "error: no token 42"
