"""Configuration: TOML files validated once at start-up, overridable by ``VPP_*``.

Loading order (later wins): pydantic defaults < the packaged ``default.toml`` (``config/`` in the
repository, :mod:`vpp.packaged`) < the chosen file (for example ``config/zhuzhou-demo.toml``) <
environment variables (``VPP_DATABASE_URL``, ``VPP_API__PORT`` for nested keys). Unknown keys are errors. Every error names the file, the key
and the reason (:class:`vpp.errors.ConfigError`). Settings are passed in, never global.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from vpp.config_cluster import ClusterSettings, role_error
from vpp.config_files import describe_errors, merge
from vpp.config_files import first_error as first_error  # re-exported: readers import it here
from vpp.config_files import read_toml as read_toml
from vpp.config_ocpp import OcppSettings
from vpp.device_kinds import DeviceKind
from vpp.domain.admission import VppType
from vpp.errors import ConfigError
from vpp.fleet_specs import DeviceSpec as DeviceSpec  # the fleet part of the configuration
from vpp.fleet_specs import GatewaySpec as GatewaySpec
from vpp.fleet_specs import OwnerSpec
from vpp.fleet_specs import SiteSpec as SiteSpec
from vpp.packaged import DEFAULT_CONFIG
from vpp.packaged import programmes_dir as packaged_programmes_dir
from vpp.timeutil import DEFAULT_INTERVAL_MINUTES, DEFAULT_TIMEZONE


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServiceSettings(_Section):
    """Where and when: time zone, market interval, data directory (SQLite lives there)."""

    timezone: str = DEFAULT_TIMEZONE
    market_interval_minutes: int = Field(default=DEFAULT_INTERVAL_MINUTES, gt=0, le=60)
    data_dir: Path = Path("data")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("market_interval_minutes")
    @classmethod
    def _divides_hour(cls, v: int) -> int:
        if 60 % v:
            raise ValueError(f"market interval must divide an hour, got {v} minutes")
        return v


class TokenTtlDays(_Section):
    """How long a newly issued API token is valid, in days, per role.

    Operator tokens can do everything, so they live shortest; grid tokens sit in the grid
    operator's dispatch system and are rotated with its maintenance windows."""

    owner: int = Field(default=180, ge=1, le=3650)
    operator: int = Field(default=90, ge=1, le=3650)
    grid: int = Field(default=365, ge=1, le=3650)


class ApiSettings(_Section):
    """The daemon's HTTP API. Binds to loopback unless configured otherwise."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: lifetime of a newly issued token per role (days); expired tokens get 401
    token_ttl_days: TokenTtlDays = Field(default_factory=TokenTtlDays)
    #: after a rotation the old token keeps working this long (hours), so its user can switch
    token_rotation_grace_hours: float = Field(default=168.0, ge=0, le=24 * 90)


class PollingSettings(_Section):
    """Modbus polling: the poll loop's tick, telemetry periods per device kind and in an event,
    per-request timeout, retries with exponential backoff.

    Each tick (``interval_s``, real seconds) polls the devices that are due: a device is due
    ``period_s[kind]`` after its last poll, or ``event_period_s`` after it while it holds a
    setpoint we wrote (in an event and its tail, until released). Periods count on the
    devices' clock (the one readings are stamped with), so a simulated clock running faster
    than real time polls more often in real time, never more often than every tick.
    Heartbeats do not depend on polls (:mod:`vpp.heartbeats`)."""

    interval_s: float = Field(default=1.0, gt=0)
    period_s: dict[DeviceKind, float] = Field(default_factory=lambda: {
        DeviceKind.BATTERY: 5.0, DeviceKind.EV_CHARGER: 10.0, DeviceKind.V2G_CHARGER: 5.0,
        DeviceKind.COMMERCIAL_BUILDING: 15.0, DeviceKind.INDUSTRIAL_LOAD: 15.0,
        DeviceKind.PV_INVERTER: 10.0})
    event_period_s: float = Field(default=2.0, gt=0)
    timeout_s: float = Field(default=1.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    backoff_base_s: float = Field(default=0.1, ge=0)
    offline_after_failures: int = Field(default=3, ge=1)
    #: the longest pause between two heartbeats (the daemon's ``heartbeat`` loop, independent
    #: of the poll cycle); shorter when an enrolled device's watchdog needs it, see below
    watchdog_period_s: float = Field(default=10.0, gt=0)
    #: heartbeat period as a fraction of the shortest device watchdog timeout among the polled
    #: devices (a 60 s PLC watchdog and 1/3: every 20 s), capped at ``watchdog_period_s``;
    #: at most 1/2 so that one late or failed heartbeat never lets a watchdog expire
    heartbeat_fraction: float = Field(default=1.0 / 3.0, gt=0, le=0.5)
    telemetry_batch_size: int = Field(default=500, ge=1)
    #: a device drawing power whose energy counter has not moved for this long (and should
    #: have, by at least 5 counter steps) is reported as "stuck values"
    stuck_after_s: float = Field(default=300.0, gt=0)
    #: a device found offline is tried again only this often (0: every cycle), so that a
    #: silent one does not hold up its gateway's cycle by timeout x (retries + 1) every second
    offline_retry_s: float = Field(default=30.0, ge=0)
    #: the enrolment probe's own per-request timeout and retries: it runs once per enrolment
    #: (or re-probe), so a gateway that is slow for a moment is not refused for good
    probe_timeout_s: float = Field(default=2.0, gt=0)
    probe_retries: int = Field(default=2, ge=0, le=10)

    @model_validator(mode="after")
    def _periods(self) -> PollingSettings:
        missing = [k.value for k in DeviceKind if k not in self.period_s]
        if missing:
            raise ValueError(f"period_s: a period for every device kind is needed; missing: "
                             f"{missing}")
        if any(not v > 0 for v in self.period_s.values()):
            raise ValueError("period_s: periods must be > 0")
        slow = {k.value: v for k, v in self.period_s.items() if not v >= self.event_period_s}
        if slow:
            raise ValueError(f"period_s: {slow} shorter than event_period_s "
                             f"({self.event_period_s:g} s); a device in an event is polled "
                             "at least as often as in normal running")
        return self


class SchedulerSettings(_Section):
    """Dispatch QP: horizon, solver tolerance, re-plan period, optional Dask scheduler address."""

    horizon_intervals: int = Field(default=96, ge=1, le=4 * 96)
    eps: float = Field(default=1e-4, gt=0, lt=1)
    polishing: bool = False  # OSQP solution polishing (lets eps = 1e-3 settle money-exact)
    replan_period_s: float = Field(default=300.0, gt=0)
    #: a re-plan (not an event's first plan) stops after this long with OSQP's iterate at the
    #: limit as the plan (0: no limit); a re-plan holds up the control loop while it runs
    replan_time_limit_s: float = Field(default=25.0, ge=0)
    shortfall_penalty_yuan_per_kwh: float = Field(default=100.0, gt=0)
    #: an event's plan runs this long past the call's end: the rebound of buildings, the
    #: industrial make-up and the batteries' recharge to their state of charge at the call must
    #: fit in it (its setpoints are written too: dispatch ramps the devices back over it)
    event_tail_minutes: int = Field(default=240, ge=0, le=24 * 60)
    #: in every interval of the call the plan reduces at least the declared kW and at most this
    #: % more (a margin against baseline error, used where it saves energy cost); capped at the
    #: programme's band ceiling, past which nothing is paid
    target_margin_pct: float = Field(default=5.0, ge=0, le=50)
    #: over the tail the fleet's planned power stays between its baseline and baseline x
    #: (1 + this/100) in every interval: devices come back ramped (soft: a penalty above)
    rebound_max_pct: float = Field(default=10.0, ge=0, le=100)
    partition_size: int = Field(default=5000, ge=10)
    dask_scheduler_address: str | None = None
    #: between calls the daemon runs the batteries against the programme's tariff, holding a
    #: day-ahead call's reserve (vpp.daemon.tou_dispatch); off by default: it cycles owners'
    #: batteries every day on a tariff the programme file marks unverified
    tou_schedule: bool = False

    def tail_intervals(self, interval_minutes: int) -> int:
        """Intervals of an event's planning horizon after the call (``event_tail_minutes``)."""
        return -(-self.event_tail_minutes // interval_minutes)


class ForecastSettings(_Section):
    """Load forecasting: model, quantiles, LightGBM hyper-parameters, data rules.

    See docs/forecasting.md. ``calendar`` names the working-day calendar (``china``: public
    holidays and adjusted working days; ``weekend``: Monday-Friday). Gaps in load data up to
    ``max_gap_minutes`` are interpolated; longer ones are errors.
    """

    model: str = "lightgbm"
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9])
    horizon_hours: int = Field(default=48, ge=1, le=168)
    #: the forecast's step: always the market interval (``service.market_interval_minutes``,
    #: copied in by :class:`Settings`); a different value set here is refused
    interval_minutes: int = Field(default=DEFAULT_INTERVAL_MINUTES, gt=0, le=60)
    calendar: str = "china"
    max_gap_minutes: int = Field(default=60, ge=0, le=24 * 60)
    n_estimators: int = Field(default=300, ge=1, le=5000)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=31, ge=2, le=1024)
    min_data_in_leaf: int = Field(default=200, ge=1)
    quantile_method: str = "residual"  # or "quantile" (one LightGBM quantile model each)
    calibration_days: int = Field(default=28, ge=1, le=365)
    max_train_rows: int = Field(default=300_000, ge=1000)
    train_days: int = Field(default=365, ge=7, le=3650)
    train_origin_stride_hours: int = Field(default=6, ge=1, le=24)
    retrain_every_days: int = Field(default=28, ge=1, le=365)
    num_threads: int = Field(default=1, ge=0, le=256)  # LightGBM; 0 = all cores (slow when shared)
    seed: int = 0

    @field_validator("quantile_method")
    @classmethod
    def _qmethod(cls, v: str) -> str:
        if v not in {"residual", "quantile"}:
            raise ValueError(f"unknown quantile_method {v!r} (valid: residual, quantile)")
        return v

    @field_validator("calendar")
    @classmethod
    def _calendar(cls, v: str) -> str:
        if v not in {"china", "weekend"}:
            raise ValueError(f"unknown calendar {v!r} (valid: china, weekend)")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        valid = {"seasonal_naive", "lightgbm"}
        if v not in valid:
            raise ValueError(f"unknown forecast model {v!r} (valid: {', '.join(sorted(valid))})")
        return v

    @field_validator("quantiles")
    @classmethod
    def _q(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < q < 1 for q in v):
            raise ValueError("quantiles must be in (0, 1)")
        return sorted(v)


class BiddingSettings(_Section):
    """Market participation: which programme applies, the aggregator's fee."""

    programme: str = "hunan-2026"
    #: default: the packaged programmes (:mod:`vpp.packaged`); a directory set here replaces them
    programmes_dir: Path = Field(default_factory=packaged_programmes_dir)
    aggregator_fee_pct: float = Field(default=15.0, ge=0, le=100)
    delivery_confidence: float = Field(default=0.9, gt=0, lt=1)
    #: a fleet without the history an offer is made from declares this % of what its devices
    #: can hold for the whole event (bidding.fallback): 40% is penalised only if the fleet
    #: delivers under 20% of that estimate (band floor 50%), paid in full up to 48% (ceiling 120%)
    no_history_fraction_pct: float = Field(default=40.0, gt=0, le=100)
    #: the VPP's type under the programme (load, generation or mixed): which admission rules
    #: apply and which devices count (bidding.admission)
    vpp_type: VppType = VppType.LOAD


class OpenAdrSettings(_Section):
    """The OpenADR 2.0b VEN: off unless ``vtn_url`` is set (docs/daemon.md, "OpenADR 2.0b").

    ``cert_file``/``key_file``: the VEN's PEM certificate and unencrypted private key (TLS client
    certificate; with ``disable_signature = false`` also the XML signature); ``ca_file``: the CA
    that issued the VTN's server certificate; ``vtn_fingerprint``: the VTN certificate's
    OpenADR fingerprint, to verify its signed messages."""

    vtn_url: str | None = Field(default=None, pattern=r"^https?://")
    ven_name: str = Field(default="xiang-vpp", min_length=1)
    ven_id: str | None = Field(default=None, min_length=1)  # if the VTN assigned one beforehand
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    vtn_fingerprint: str | None = None
    disable_signature: bool = True
    report_interval_s: float = Field(default=60.0, gt=0)
    programme: str | None = None  # programme the VTN's events fall under (default: bidding's)
    #: the product a VTN event is called as; auto: by its notice, the first of real time and
    #: day ahead whose notice_min_hours..notice_max_hours holds it (else real time, refused)
    event_type: str = Field(default="auto", pattern="^(auto|day_ahead|real_time)$")
    #: kW per SIMPLE level, if agreed with the VTN operator; 0: a SIMPLE level of 1-3 asks for
    #: what the fleet can dependably offer (vpp.daemon.openadr_signals)
    simple_level_kw: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _certificates(self) -> OpenAdrSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (the VEN's certificate and key)")
        if self.cert_file is not None and self.ca_file is None:
            # openleadr checks the VTN's server certificate against ca_file only
            raise ValueError("cert_file needs ca_file (the CA that issued the VTN's certificate)")
        if not self.disable_signature and self.cert_file is None:
            raise ValueError("disable_signature = false signs messages: set cert_file and key_file")
        for name in ("cert_file", "key_file", "ca_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}: no file at {path}")
        return self


class ControlSettings(_Section):
    """The control loop's judgement of devices and re-plans (``[daemon.control]``).

    A device *overrides* its setpoint when a reading taken while it holds a verified setpoint
    shows it consuming more than that setpoint plus its kind's tolerance
    (``tolerance_pct`` of its rated power, at least ``min_tolerance_kw``); for its kind's
    ``response_s`` after a write the previous setpoint, if higher, still counts (the device is
    ramping). Such a device leaves the event's plan for the rest of the event -- unless its
    registers show that it dropped the setpoint by itself (its watchdog fell back, or it
    restarted): the setpoint is then written again, at most ``reassert_max`` times a device
    and event, and only after that is the device taken out."""

    tolerance_pct: dict[DeviceKind, float] = Field(default_factory=lambda: {
        DeviceKind.BATTERY: 10.0, DeviceKind.EV_CHARGER: 15.0, DeviceKind.V2G_CHARGER: 10.0,
        DeviceKind.COMMERCIAL_BUILDING: 15.0, DeviceKind.INDUSTRIAL_LOAD: 10.0,
        DeviceKind.PV_INVERTER: 10.0})
    min_tolerance_kw: float = Field(default=0.5, ge=0)
    response_s: dict[DeviceKind, float] = Field(default_factory=lambda: {
        DeviceKind.BATTERY: 15.0, DeviceKind.EV_CHARGER: 30.0, DeviceKind.V2G_CHARGER: 30.0,
        DeviceKind.COMMERCIAL_BUILDING: 120.0, DeviceKind.INDUSTRIAL_LOAD: 60.0,
        DeviceKind.PV_INVERTER: 30.0})
    override_replan_after_s: float = Field(default=10.0, ge=0)  # batch overrides found in a row
    unchanged_pct: float = Field(default=1.0, ge=0, le=100)  # re-plan "unchanged" within this
    reassert_max: int = Field(default=3, ge=0)  # setpoints re-written after a fall-back

    @field_validator("tolerance_pct", "response_s")
    @classmethod
    def _per_kind(cls, v: dict[DeviceKind, float]) -> dict[DeviceKind, float]:
        missing = [k.value for k in DeviceKind if k not in v]
        if missing:
            raise ValueError(f"a value for every device kind is needed; missing: {missing}")
        if any(x < 0 for x in v.values()):
            raise ValueError("values must be >= 0")
        return v


class DaemonSettings(_Section):
    """``vpp serve``: control-loop periods, dispatch fan-out, re-plan rule, intake policy."""

    control_period_s: float = Field(default=2.0, gt=0)
    settle_period_s: float = Field(default=30.0, gt=0)
    settle_delay_minutes: float = Field(default=0.0, ge=0)  # wait for meter data after an event ends
    dispatch_concurrency: int = Field(default=256, ge=1, le=10_000)
    shortfall_tolerance_pct: float = Field(default=10.0, ge=0, le=100)
    shortfall_checks: int = Field(default=3, ge=1)  # consecutive short checks before a re-plan
    min_replan_interval_s: float = Field(default=60.0, ge=0)
    drain_timeout_s: float = Field(default=10.0, gt=0)
    loop_backoff_base_s: float = Field(default=0.5, gt=0)
    loop_backoff_max_s: float = Field(default=60.0, gt=0)
    live_points: int = Field(default=1800, ge=10, le=100_000)
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    openadr: OpenAdrSettings = Field(default_factory=OpenAdrSettings)
    control: ControlSettings = Field(default_factory=ControlSettings)


class EnrolmentSettings(_Section):
    """Where owners' gateways may be (:mod:`vpp.gateway_hosts`): checked at enrolment, at every
    edit (CLI, API, ``import-fleet``) and again before the daemon connects.

    A host is resolved and every address it resolves to must be inside ``allowed_networks``;
    loopback, link-local and the aggregator's own addresses are refused even there unless
    allowed below; multicast, unspecified, broadcast and reserved addresses are always refused.
    ``allowed_ports`` limits the Modbus TCP ports ("502" or a range "1024-65535")."""

    allowed_networks: list[str] = Field(default_factory=lambda: [
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"])
    allowed_ports: list[str] = Field(default_factory=lambda: ["502", "1024-65535"])
    allow_loopback: bool = False  # simulated gateways (`vpp sim gateways`) run on 127.0.0.1
    allow_link_local: bool = False
    allow_own_addresses: bool = False  # the aggregator's own interface addresses

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for net in v:
            try:
                ipaddress.ip_network(net, strict=True)
            except ValueError as exc:
                raise ValueError(f"not a network in CIDR form: {net!r} ({exc})") from None
        return v

    @field_validator("allowed_ports")
    @classmethod
    def _ports(cls, v: list[str]) -> list[str]:
        for item in v:
            lo, _, hi = item.partition("-")
            if not (lo.isdigit() and (not hi or hi.isdigit())
                    and 1 <= int(lo) <= int(hi or lo) <= 65535):
                raise ValueError(f"not a port or port range in 1-65535: {item!r}")
        return v


class CitySettings(_Section):
    """The system the portfolio is measured against (the 5%-of-peak goal)."""

    name: str = "Zhuzhou"
    system_peak_mw: float = Field(default=2500.0, gt=0)
    dr_goal_pct: float = Field(default=5.0, gt=0, le=100)


class Settings(BaseSettings):
    """The whole, validated configuration of one aggregator process."""

    model_config = SettingsConfigDict(
        env_prefix="VPP_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    database_url: str | None = None
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    polling: PollingSettings = Field(default_factory=PollingSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    forecasting: ForecastSettings = Field(default_factory=ForecastSettings)
    bidding: BiddingSettings = Field(default_factory=BiddingSettings)
    city: CitySettings = Field(default_factory=CitySettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    enrolment: EnrolmentSettings = Field(default_factory=EnrolmentSettings)
    ocpp: OcppSettings = Field(default_factory=OcppSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    owners: list[OwnerSpec] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment overrides the files (passed in as init values).
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _one_market_interval(self) -> Settings:
        """The forecast's step is the market interval: one setting, not two that may differ."""
        market, fc = self.service.market_interval_minutes, self.forecasting
        if "interval_minutes" in fc.model_fields_set and fc.interval_minutes != market:
            raise ValueError(
                f"forecasting.interval_minutes = {fc.interval_minutes} differs from the market "
                f"interval service.market_interval_minutes = {market}: the forecast steps by the "
                "market interval; remove forecasting.interval_minutes")
        self.forecasting = fc.model_copy(update={"interval_minutes": market})
        return self

    @model_validator(mode="after")
    def _unique_gateways(self) -> Settings:
        seen: set[tuple[str, int]] = set()
        for o in self.owners:
            for s in o.sites:
                for g in s.gateways:
                    if (g.host, g.port) in seen:
                        raise ValueError(f"gateway {g.host}:{g.port} is declared twice")
                    seen.add((g.host, g.port))
        return self

    @model_validator(mode="after")
    def _cluster_on_postgres(self) -> Settings:
        err = role_error(self.cluster.role, self.database_url)
        if err is not None:
            raise ValueError(err)
        return self

    @property
    def effective_database_url(self) -> str:
        """``database_url`` if set, else an SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.service.data_dir / 'vpp.sqlite3').as_posix()}"


def load_settings(path: Path | str | None = None, *, with_defaults_file: bool = True) -> Settings:
    """Load and validate the configuration.

    ``path`` (or ``$VPP_CONFIG``) names the file to apply over the packaged ``default.toml``
    (:data:`vpp.packaged.DEFAULT_CONFIG`, from any working directory). Raises
    :class:`ConfigError` with file, key and reason on any problem.
    """
    env_path = os.environ.get("VPP_CONFIG")
    chosen = Path(path) if path else (Path(env_path) if env_path else None)
    files: list[tuple[str, dict[str, Any]]] = []
    if (
        with_defaults_file
        and (chosen is None or chosen.resolve() != DEFAULT_CONFIG.resolve())
    ):
        files.append((str(DEFAULT_CONFIG), read_toml(DEFAULT_CONFIG)))
    if chosen is not None:
        files.append((str(chosen), read_toml(chosen)))
    data: dict[str, Any] = {}
    for _, d in files:
        data = merge(data, d)
    try:
        return Settings(**data)
    except pydantic.ValidationError as exc:
        raise ConfigError(describe_errors(exc, files)) from None
