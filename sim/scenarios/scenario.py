"""A simulation scenario: ``config/scenarios/<name>.toml`` validated once (pydantic, extra=forbid).

The file holds the city (peak, growth, load shape), weather normals, the season, the simulated
grid operator's call rules, fault rates and the fleet segments with their distributions. Every
figure carries its source in the file; code holds no city facts.
"""

from __future__ import annotations

import tomllib
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vpp.device_kinds import DeviceKind
from vpp.errors import ConfigError
from vpp.packaged import scenarios_dir
from vpp.timeutil import DEFAULT_INTERVAL_MINUTES, DEFAULT_TIMEZONE

DEFAULT_SCENARIOS_DIR = scenarios_dir()  # packaged (vpp.packaged); a path overrides it


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Lognormal(_M):
    dist: Literal["lognormal"]
    median: float = Field(..., gt=0)
    sigma: float = Field(..., ge=0)
    min: float = Field(0.0, ge=0)
    max: float = Field(float("inf"), gt=0)


class Uniform(_M):
    dist: Literal["uniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _order(self) -> Uniform:
        if self.low > self.high:
            raise ValueError(f"uniform low={self.low} > high={self.high}")
        return self


class Choice(_M):
    dist: Literal["choice"]
    values: list[Any] = Field(..., min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _weights(self) -> Choice:
        if self.weights is not None:
            if len(self.weights) != len(self.values) or any(w < 0 for w in self.weights):
                raise ValueError("choice weights must be non-negative, one per value")
            if sum(self.weights) <= 0:
                raise ValueError("choice weights must not all be zero")
        return self


Distribution = Annotated[Lognormal | Uniform | Choice, Field(discriminator="dist")]
#: A fixed value (a number, flag, name or list of numbers) or a distribution to draw from.
Value = float | int | bool | str | list[float] | Distribution


class ScenarioMeta(_M):
    name: str = Field(..., min_length=1)
    description: str = ""
    extends: str | None = None  # a base scenario this file changes (see load_scenario)
    seed: int = Field(..., ge=0)
    timezone: str = DEFAULT_TIMEZONE
    interval_minutes: int = Field(DEFAULT_INTERVAL_MINUTES, gt=0, le=60)
    programme: str = Field(..., min_length=1)


class CityModel(_M):
    name: str
    peak_2020_mw: float = Field(..., gt=0)
    peak_2020_year: int
    target_year: int
    growth_pct_per_year: float = Field(..., ge=-10, le=30)
    dr_goal_pct: float = Field(..., gt=0, le=100)
    winter_peak_ratio: float = Field(..., gt=0, le=1.5)
    summer_shape_pu: list[float] = Field(..., min_length=24, max_length=24)
    winter_shape_pu: list[float] = Field(..., min_length=24, max_length=24)
    summer_sensitivity_pct_per_c: float = Field(..., ge=0)
    winter_sensitivity_pct_per_c: float = Field(..., ge=0)
    weekend_factor: float = Field(..., gt=0, le=1.5)

    @property
    def system_peak_mw(self) -> float:
        """The target year's peak, extrapolated from the reference year at the stated growth."""
        years = self.target_year - self.peak_2020_year
        return self.peak_2020_mw * (1 + self.growth_pct_per_year / 100) ** years

    @property
    def goal_mw(self) -> float:
        return self.system_peak_mw * self.dr_goal_pct / 100

    @field_validator("summer_shape_pu", "winter_shape_pu")
    @classmethod
    def _shape(cls, v: list[float]) -> list[float]:
        if any(x <= 0 for x in v) or abs(max(v) - 1.0) > 1e-9:
            raise ValueError("a load shape is 24 positive per-unit values with maximum 1.0")
        return v


class WeatherModel(_M):
    normals_c: dict[int, tuple[float, float]]
    anomaly_sd_c: float = Field(..., ge=0)
    anomaly_autocorr: float = Field(..., ge=0, lt=1)
    forecast_error_sd_c: float = Field(..., ge=0)

    @field_validator("normals_c")
    @classmethod
    def _months(cls, v: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
        for m, (tmax, tmin) in v.items():
            if not 1 <= m <= 12:
                raise ValueError(f"month {m} is not 1..12")
            if tmin > tmax:
                raise ValueError(f"month {m}: mean min {tmin} > mean max {tmax}")
        return v


class SeasonModel(_M):
    periods: list[tuple[date, date]] = Field(..., min_length=1)
    history_days: int = Field(21, ge=7, le=90)

    @field_validator("periods")
    @classmethod
    def _ordered(cls, v: list[tuple[date, date]]) -> list[tuple[date, date]]:
        for a, b in v:
            if a > b:
                raise ValueError(f"season period {a}..{b} is inverted")
        return v


class ValleyFillingModel(_M):
    """The grid operator's valley-filling calls (``[grid_operator.valley_filling]``): a day-ahead
    call over ``window`` on each day of ``day_type`` from ``first_day`` on, at most
    ``max_events_per_month`` a month (apart from the peak-shaving calls' own limit), for
    ``request_pct_of_peak`` of the day's forecast peak; the fleet is asked to raise its load."""

    first_day: date
    day_type: Literal["non_working", "working", "any"] = "non_working"
    window: tuple[time, time]
    request_pct_of_peak: float = Field(..., gt=0, le=100)
    max_events_per_month: int = Field(..., ge=0)

    @field_validator("window")
    @classmethod
    def _window(cls, v: tuple[time, time]) -> tuple[time, time]:
        if v[0] >= v[1]:
            raise ValueError(f"valley-filling window {v[0]}..{v[1]} must start before it ends")
        return v


class GridOperatorModel(_M):
    day_ahead_trigger_pu: float = Field(..., gt=0, le=1.5)
    summer_window: tuple[time, time]
    winter_window: tuple[time, time]
    request_pct_of_peak: float = Field(..., gt=0, le=100)
    real_time_trigger_c: float = Field(..., ge=0)
    real_time_notice_minutes: int = Field(..., ge=0, le=24 * 60)
    real_time_duration_minutes: int = Field(..., gt=0, le=24 * 60)
    real_time_request_pct_of_peak: float = Field(..., gt=0, le=100)
    max_events_per_month: int = Field(..., ge=0)
    weekend_calls: bool = False
    valley_filling: ValleyFillingModel | None = None  # None: peak-shaving calls only

    @field_validator("summer_window", "winter_window")
    @classmethod
    def _window(cls, v: tuple[time, time]) -> tuple[time, time]:
        if v[0] >= v[1]:
            raise ValueError(f"event window {v[0]}..{v[1]} must start before it ends")
        return v


class FaultModel(_M):
    fail_probability: float = Field(..., ge=0, le=1)
    leave_probability: float = Field(..., ge=0, le=1)
    under_deliver_probability: float = Field(..., ge=0, le=1)
    under_deliver_fraction: tuple[float, float]

    @model_validator(mode="after")
    def _sum(self) -> FaultModel:
        if self.fail_probability + self.leave_probability + self.under_deliver_probability > 1:
            raise ValueError("fault probabilities add up to more than 1")
        lo, hi = self.under_deliver_fraction
        if not 0 <= lo <= hi <= 1:
            raise ValueError("under_deliver_fraction must be 0 <= low <= high <= 1")
        return self


class Segment(_M):
    """One population of like devices and the share of it the aggregator enrols."""

    name: str = Field(..., min_length=1, pattern=r"^[a-z0-9-]+$")
    kind: DeviceKind
    description: str = ""
    counts: Literal["sites", "devices"]
    population: int = Field(..., ge=0)
    enrolled_share: float = Field(..., ge=0, le=1)
    devices_per_site: Value = 1
    owner_pool: int | None = Field(None, ge=1)  # sites shared among this many owners (operators)
    rated_power_kw: Value
    min_setpoint_share: float = Field(0.0, ge=-1, le=1)
    profile: str = Field(..., min_length=1)
    params: dict[str, Value] = Field(default_factory=dict)
    behaviour: dict[str, Value] = Field(default_factory=dict)
    arrivals_per_hour: list[float] | None = Field(None, min_length=24, max_length=24)
    # EV chargers: the share of the segment's posts that speak OCPP to a central system
    # (the rest: Modbus to a local gateway); the full-stack scale runs them so
    ocpp_share: float = Field(0.0, ge=0, le=1)
    source: str = Field(..., min_length=1)

    @property
    def enrolled(self) -> int:
        """Enrolled sites or devices (per ``counts``): population x share, rounded."""
        return round(self.population * self.enrolled_share)

    @model_validator(mode="after")
    def _ocpp_chargers_only(self) -> Segment:
        if self.ocpp_share and self.kind is not DeviceKind.EV_CHARGER:
            raise ValueError(f"ocpp_share: only EV chargers speak OCPP, not {self.kind.value}")
        return self


class Scenario(_M):
    scenario: ScenarioMeta
    city: CityModel
    weather: WeatherModel
    season: SeasonModel
    grid_operator: GridOperatorModel
    faults: FaultModel
    segments: list[Segment] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _unique_segments(self) -> Scenario:
        names = [s.name for s in self.segments]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate segment names: {', '.join(sorted(dup))}")
        return self

    @property
    def name(self) -> str:
        return self.scenario.name


_BRANCHES = {"float", "int", "bool", "str", "list[float]", "lognormal", "uniform", "choice"}
_SPECIFIC = {"value_error", "extra_forbidden", "missing", "union_tag_invalid",
             "greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _describe(exc: pydantic.ValidationError) -> str:
    """One clause per error; for a value that may be a number or a distribution, only the
    specific complaint (not one line per alternative type)."""
    errors = exc.errors()
    errors = [e for e in errors if e["type"] in _SPECIFIC] or errors
    parts: list[str] = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err["loc"] if str(p) not in _BRANCHES) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        clause = f"key {loc}: {msg.removeprefix('Value error, ')}"
        if clause not in parts:
            parts.append(clause)
    return "; ".join(parts)


def scenario_path(name_or_path: str | Path, scenarios_dir: Path = DEFAULT_SCENARIOS_DIR) -> Path:
    """``zhuzhou-2025`` -> ``config/scenarios/zhuzhou-2025.toml``; a path is used as given."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.parent != Path("."):
        return p
    return scenarios_dir / f"{name_or_path}.toml"


def _read(path: Path, scenarios_dir: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        known = sorted(p.stem for p in scenarios_dir.glob("*.toml")) if scenarios_dir.is_dir() else []
        hint = f" (known: {', '.join(known)})" if known else ""
        raise ConfigError(f"{path}: scenario file not found{hint}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: tables merge key by key, ``segments`` merge by name (a
    segment of a new name is appended), anything else is replaced."""
    out = dict(base)
    for key, v in over.items():
        if key == "segments" and isinstance(v, list):
            segs = [dict(x) for x in base.get("segments", [])]
            names = [x.get("name") for x in segs]
            for seg in v:
                if seg.get("name") in names:
                    k = names.index(seg["name"])
                    segs[k] = _merge(segs[k], seg)
                else:
                    segs.append(dict(seg))
                    names.append(seg.get("name"))
            out[key] = segs
        elif isinstance(v, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], v)
        else:
            out[key] = v
    return out


def _resolve(path: Path, scenarios_dir: Path, seen: frozenset[Path]) -> dict[str, Any]:
    data = _read(path, scenarios_dir)
    meta = data.get("scenario")
    base = meta.get("extends") if isinstance(meta, dict) else None
    if not base:
        return data
    base_path = scenario_path(str(base), path.parent)
    if base_path.resolve() in seen | {path.resolve()}:
        raise ConfigError(f"{path}: scenario 'extends' loops back to {base_path}")
    return _merge(_resolve(base_path, path.parent, seen | {path.resolve()}), data)


def load_scenario(
    name_or_path: str | Path, scenarios_dir: Path = DEFAULT_SCENARIOS_DIR
) -> Scenario:
    """Read and validate a scenario; :class:`ConfigError` names the file, key and reason.

    A file whose ``[scenario] extends`` names another scenario (in the same directory) holds
    only what it changes: its tables are merged onto the base's, and its ``[[segments]]`` onto
    the base's segments of the same name (new names are added)."""
    path = scenario_path(name_or_path, scenarios_dir)
    data = _resolve(path, scenarios_dir, frozenset())
    try:
        return Scenario.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
