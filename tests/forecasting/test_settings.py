"""The [forecasting] settings: defaults, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpp.config import ForecastSettings, load_settings
from vpp.errors import ConfigError


def test_defaults() -> None:
    s = ForecastSettings()
    assert s.model == "lightgbm" and s.quantiles == [0.1, 0.5, 0.9]
    assert s.calendar == "china" and s.quantile_method == "residual" and s.num_threads == 1


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('calendar = "mars"', "forecasting.calendar: unknown calendar 'mars'"),
        ('quantile_method = "vibes"', "forecasting.quantile_method: unknown quantile_method"),
        ('model = "prophet"', "forecasting.model: unknown forecast model"),
        ("quantiles = [0.1, 1.5]", "forecasting.quantiles: quantiles must be in (0, 1)"),
        ("n_trees = 5", "forecasting.n_trees: unknown key"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(f"[forecasting]\n{toml}\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(f, with_defaults_file=False)
