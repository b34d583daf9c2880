"""Figures written to disk: one place for the headless backend and the save-or-explain step.

Every plot the project writes (CLI ``--plot``, owner statements, simulation reports) is a PNG made
with matplotlib's Agg backend, so it works on a machine with no screen. ``save_figure`` turns an
unwritable path into a one-line :class:`~vpp.errors.ValidationError` and always frees the figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vpp.errors import ValidationError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def pyplot():  # noqa: ANN201 - returns the matplotlib.pyplot module
    """``matplotlib.pyplot`` on the headless Agg backend (imported lazily: it is slow to load)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (parent folders created), close it, return the path.

    Raises ValidationError naming the path if it cannot be written (read-only folder, a file in
    the way of a folder...), instead of a traceback.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    except OSError as exc:
        raise ValidationError(f"cannot write plot {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return path
