"""vpp.plotting: every written plot is a PNG on disk, or one clear error naming the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpp.errors import ValidationError
from vpp.plotting import pyplot, save_figure


def _figure():  # noqa: ANN202
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    return fig, plt


def test_writes_png_and_frees_the_figure(tmp_path: Path) -> None:
    fig, plt = _figure()
    out = save_figure(fig, tmp_path / "nested" / "plot.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.number not in plt.get_fignums()


def test_unwritable_path_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    fig, plt = _figure()
    with pytest.raises(ValidationError, match=r"cannot write plot .*file/plot\.png"):
        save_figure(fig, blocker / "plot.png")
    assert fig.number not in plt.get_fignums()
