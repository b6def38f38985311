"""The campaign file: YAML → validated, typed settings; the one place for defaults.

Every error names the file, the key path (``retry.max_attempts``) and the fix. Paths in
the file are relative to the file's folder. The API key is only ever read from the
environment and is kept out of ``repr``, ``str`` and ``model_dump``.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from datetime import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from campaign.config.limit import parse_limit
from campaign.config.problems import config_error, one_error
from campaign.config.reading import read_yaml
from campaign.config.values import DAY_NAMES as DAY_NAMES
from campaign.config.values import Days, Duration, Limits, Region, TimeOfDay, shown
from campaign.config.values import parse_duration as parse_duration
from campaign.errors import ConfigError

log = logging.getLogger("campaign.config.model")

DEFAULT_BASE_URL = "https://api.aitelier.org/v1"
DEFAULT_KEY_ENV = "AITELIER_API_KEY"
SANDBOX_API_KEY = "avp_test_sandbox"
# Final call statuses of the API after which another attempt makes sense.
RETRYABLE_STATUSES = ("no_answer", "busy", "voicemail", "failed", "canceled")

_CAMPAIGN_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_STATE_URL_RE = re.compile(r"^postgres(ql)?://", re.IGNORECASE)
STATE_URL_ENV = "CAMPAIGN_STATE_URL"
DEFAULT_STOP_BEFORE_CLOSE_S = 300.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CallingHours(_Model):
    """Recipient-local calling hours; they can only narrow the legal defaults."""

    start: TimeOfDay = time(8, 0)
    end: TimeOfDay = time(21, 0)
    days: Days = frozenset(range(7))
    # A call starts only while the window stays open this much longer: a call created at
    # 20:59:59 rings after 21:00, and a transport retry must not carry it past the close.
    stop_before_close_s: Duration = Field(
        DEFAULT_STOP_BEFORE_CLOSE_S, alias="stop_before_close", ge=0.0, le=3 * 3600.0
    )

    @model_validator(mode="after")
    def _ordered(self) -> CallingHours:
        if self.start >= self.end:
            raise ValueError(
                f"start {self.start:%H:%M} must be before end {self.end:%H:%M} "
                "(windows crossing midnight are not allowed)"
            )
        return self


class InputConfig(_Model):
    """Where the rows come from and which columns mean what."""

    path: Path
    phone_column: str = "phone"
    region_column: str | None = None
    default_region: Region = None
    key_column: str | None = None
    variables: list[str] = Field(default_factory=list)
    allow_toll_free: bool = True
    allow_voip: bool = True
    # A run refuses (exit 2) when a larger share of the rows is rejected; without it, a
    # share over WARN_REJECT_SHARE is only warned about.
    max_reject_share: float | None = Field(None, ge=0.0, le=1.0)
    # The worksheet of an .xlsx input, by its tab name (case ignored); else the first one.
    sheet: str | None = None
    # Compliance columns (campaign.planning): the recipient's recorded consent to automated
    # calls with an artificial voice, and where the recipient lives (US state or postal
    # code), which narrows the calling window of the number's own zone.
    consent_column: str | None = None
    state_column: str | None = None
    postal_code_column: str | None = None

    @field_validator("phone_column")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the phone column name cannot be empty")
        return value

    @field_validator("consent_column", "state_column", "postal_code_column")
    @classmethod
    def _column_named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("the column name cannot be empty; leave the key out instead")
        return value

    @field_validator("sheet")
    @classmethod
    def _sheet_named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("the sheet name cannot be empty; leave it out to read the first sheet")
        return value


class RetryConfig(_Model):
    """Which statuses are retried, how often and how far apart."""

    statuses: list[str] = Field(default_factory=lambda: ["no_answer", "busy"])
    max_attempts: int = Field(3, ge=1, le=20)
    min_interval_s: Duration = Field(4 * 3600.0, alias="min_interval")
    stop_outcomes: list[str] = Field(default_factory=lambda: ["opted_out", "wrong_person"])
    # rotate: a retry goes to a part of the recipient's day (morning, afternoon, evening)
    # not tried yet; any: at min_interval after the last call, whatever the time of day.
    dayparts: Literal["rotate", "any"] = "rotate"

    @field_validator("statuses")
    @classmethod
    def _retryable(cls, statuses: list[str]) -> list[str]:
        for status in statuses:
            if status not in RETRYABLE_STATUSES:
                close = difflib.get_close_matches(status, RETRYABLE_STATUSES, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ValueError(
                    f"'{status}' is not a final call status that can be retried; {hint}"
                    f"use some of {', '.join(RETRYABLE_STATUSES)}"
                )
        return statuses


class LimitsConfig(_Model):
    """Client-side limits; defaults are the API's documented ones."""

    calls: Limits = Field(default_factory=lambda: [parse_limit("5/min")])
    requests: Limits = Field(default_factory=lambda: [parse_limit("60/min"), parse_limit("1000/h")])
    # even: calls spread over the window (campaign.limits.pacing); burst: as the window admits.
    pacing: Literal["even", "burst"] = "even"


# Regions whose law asks for the called party's prior express consent before an automated
# call with an artificial (AI) voice: the US (TCPA, 47 U.S.C. 227(b); FCC Declaratory
# Ruling FCC 24-17, Feb 2024). A campaign file can add regions, never remove these.
CONSENT_REQUIRED_REGIONS: tuple[str, ...] = ("US",)
DEFAULT_MAX_CALLS_PER_NUMBER = "3/24h"


class ComplianceConfig(_Model):
    """What the law asks of automated calls beyond calling hours and do-not-call lists."""

    # attested: the operator states that every listed person consented (printed in every
    # run's log, summary.json and report); else input.consent_column must say it per row.
    consent: Literal["attested"] | None = None
    consent_regions: list[Region] = Field(default_factory=list)
    # Calls to one number, across every campaign sharing the state dir.
    max_calls_per_number: Limits = Field(
        default_factory=lambda: [parse_limit(DEFAULT_MAX_CALLS_PER_NUMBER)]
    )

    @property
    def regions_needing_consent(self) -> tuple[str, ...]:
        """The built-in regions and the campaign's own, in that order, each once."""
        extra = [region for region in self.consent_regions if region]
        return tuple(dict.fromkeys([*CONSENT_REQUIRED_REGIONS, *extra]))


class BatchConfig(_Model):
    """Settings for ``mode: batches``."""

    max_rows: int = Field(500, ge=1, le=10_000)


class ApiConfig(_Model):
    """Where the API is; the key's variable name (never the key itself)."""

    base_url: str = DEFAULT_BASE_URL
    key_env: str = DEFAULT_KEY_ENV

    @field_validator("key_env")
    @classmethod
    def _variable_name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
            raise ValueError("must be the name of an environment variable, not the key itself")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value != "sandbox" and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{shown(value)} is not an http(s) URL or 'sandbox'")
        return value


class SandboxSettings(_Model):
    """Emulator settings, used only with ``api.base_url: sandbox``."""

    time_scale: float = Field(1.0, gt=0)
    faults: str | None = None
    config: Path | None = None
    wallet_balance: str | None = None


class SuppressionList(_Model):
    """A do-not-call list: its file and, if its numbers need them, its column and region.

    In the campaign file an entry is a path (``dnc.csv``) or a mapping
    (``{path: dnc.csv, column: "Phone Number", region: GB}``). ``format: registry`` is
    the US national registry's download (ten-digit numbers, one a line; a file or a
    folder of them), found by itself when the file looks like one. ``expires_column``
    and ``starts_column`` name a list's date columns (campaign.planning.suppression).
    """

    path: Path
    column: str | None = None
    region: Region = None
    format: Literal["auto", "csv", "registry"] = "auto"
    expires_column: str | None = None
    starts_column: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, value: object) -> object:
        return {"path": value} if isinstance(value, str | Path) else value

    @field_validator("column", "expires_column", "starts_column")
    @classmethod
    def _column(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not value.strip():
            fix = "leave it out to pick by name" if info.field_name == "column" else "leave it out"
            raise ValueError(f"the column name cannot be empty; {fix}")
        return value

    @model_validator(mode="after")
    def _registry_has_no_columns(self) -> SuppressionList:
        named = [key for key in ("column", "expires_column", "starts_column") if getattr(self, key)]
        if self.format == "registry" and named:
            raise ValueError(
                f"format: registry files are ten-digit numbers with no columns; "
                f"remove {', '.join(named)} (or use format: csv)"
            )
        if self.format == "registry" and self.region not in (None, "US"):
            raise ValueError("format: registry files hold US numbers; remove region")
        return self


class CampaignConfig(_Model):
    """A validated campaign file."""

    source_path: Path
    campaign: str
    scenario_id: str
    mode: Literal["calls", "batches"] = "calls"
    input: InputConfig
    suppression: list[SuppressionList] = Field(default_factory=list)
    calling_hours: CallingHours | Literal["unrestricted"] | None = None
    retry: RetryConfig = Field(default_factory=RetryConfig)  # type: ignore[arg-type]
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)  # type: ignore[arg-type]
    compliance: ComplianceConfig = Field(default_factory=ComplianceConfig)
    cost_estimate: Decimal | None = None
    api: ApiConfig = Field(default_factory=ApiConfig)
    priority: float = Field(1.0, gt=0)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)  # type: ignore[arg-type]
    state_dir: Path
    # PostgreSQL for the campaign's state instead of SQLite files in state_dir; shown here
    # without its password (the real one, from CAMPAIGN_STATE_URL, is kept private).
    state_url: str | None = None
    output_dir: Path

    _api_key: str | None = PrivateAttr(default=None)
    _state_dsn: str | None = PrivateAttr(default=None)

    @field_validator("state_url", mode="before")
    @classmethod
    def _state_url(cls, value: object) -> object:
        if value is None:
            return None
        text = str(value).strip()
        if not text:
            return None
        if not _STATE_URL_RE.match(text):
            raise ValueError(
                f"{shown(redact_url(text))} is not a PostgreSQL URL such as "
                "postgresql://user@host:5432/dbname"
            )
        if redact_url(text) != text:
            raise ValueError(
                "holds a password, and a campaign file is no place for one: leave it out and "
                f"set PGPASSWORD, use ~/.pgpass, or give the whole URL in {STATE_URL_ENV}"
            )
        return text

    @field_validator("campaign")
    @classmethod
    def _campaign_name(cls, value: str) -> str:
        if not _CAMPAIGN_RE.match(value):
            raise ValueError(
                f"{shown(value)} must be 1-100 characters of A-Z a-z 0-9 . _ - (it names files)"
            )
        return value

    @field_validator("scenario_id")
    @classmethod
    def _scenario(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("scenario_id cannot be empty")
        return value.strip()

    @field_validator("cost_estimate", mode="before")
    @classmethod
    def _cost(cls, value: object) -> object:
        if value is None:
            return None
        try:
            cost = Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f'{shown(value)} is not an amount such as "0.12"') from None
        if not cost.is_finite() or cost < 0:
            raise ValueError(f'{shown(value)} must be a non-negative amount such as "0.12"')
        return cost

    @property
    def is_sandbox(self) -> bool:
        """True when the in-process emulator stands in for the API."""
        return self.api.base_url == "sandbox"

    @property
    def stop_before_close_s(self) -> float:
        """How long a recipient's window must stay open after a call starts."""
        if isinstance(self.calling_hours, CallingHours):
            return self.calling_hours.stop_before_close_s
        return 0.0 if self.calling_hours == "unrestricted" else DEFAULT_STOP_BEFORE_CLOSE_S

    @property
    def state_path(self) -> Path:
        """The checkpoint database of this campaign."""
        return self.state_dir / f"{self.campaign}.sqlite"

    @property
    def uses_postgres(self) -> bool:
        """True when the campaign's state lives in PostgreSQL (``state_url``)."""
        return self.state_url is not None

    def state_dsn(self) -> str:
        """The PostgreSQL URL with its password, for the driver only: never log it."""
        if self._state_dsn:
            return self._state_dsn
        if self.state_url is None:
            raise ConfigError(
                "no state_url: this campaign keeps its state in SQLite files",
                path=str(self.source_path),
                key="state_url",
            )
        return self.state_url

    def api_key(self) -> str | None:
        """The API key captured from the environment at load time, if any."""
        return self._api_key

    def require_api_key(self) -> str:
        """The API key, or a ConfigError naming the variable to set."""
        if self._api_key:
            return self._api_key
        if self.is_sandbox:
            return SANDBOX_API_KEY
        raise ConfigError(
            f"no API key: set the environment variable {self.api.key_env}",
            path=str(self.source_path),
            key="api.key_env",
        )


def load_campaign(path: Path, env: Mapping[str, str] | None = None) -> CampaignConfig:
    """Read and validate a campaign file; ConfigError names file, key path and fix."""
    path = Path(path)
    env = os.environ if env is None else env
    where = str(path)
    document = read_yaml(path)
    if not isinstance(document, dict):
        raise ConfigError("the campaign file must be a YAML mapping of keys", path=where)
    data = _with_defaults(document, path, env)
    try:
        config = CampaignConfig.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, where, CampaignConfig, document) from None
    _check_files(config, where)
    key = env.get("AITELIER_API_KEY") or env.get(config.api.key_env) or None
    config._api_key = key
    dsn = env.get(STATE_URL_ENV, "").strip()
    if dsn:
        if not _STATE_URL_RE.match(dsn):
            raise ConfigError(
                f"{STATE_URL_ENV} is not a PostgreSQL URL such as "
                "postgresql://user@host:5432/dbname",
                path=where,
                key="state_url",
            )
        shown_url = redact_url(dsn)
        config = config.model_copy(update={"state_url": shown_url})
        config._api_key = key
        config._state_dsn = dsn
    return config


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (in the authority and the query)."""
    url = re.sub(r"(://[^:/@?#]*):[^@/?#]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)


def _with_defaults(document: dict[str, Any], path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """Resolve relative paths, apply env overrides and the folder-relative defaults."""
    data = dict(document)
    if "source_path" in data:
        raise ConfigError("unknown key 'source_path'", path=str(path), key="source_path")
    data["source_path"] = path
    base = path.parent
    name = str(data.get("campaign", "campaign"))

    def resolve(value: object) -> object:
        if isinstance(value, str | Path):
            return Path(os.path.normpath(base / value))
        return value

    if isinstance(data.get("input"), dict):
        data["input"] = dict(data["input"])
        if "path" in data["input"]:
            data["input"]["path"] = resolve(data["input"]["path"])
    suppression = data.get("suppression")
    if isinstance(suppression, str | dict):
        suppression = [suppression]
    if isinstance(suppression, list):
        data["suppression"] = [
            {**item, "path": resolve(item["path"])}
            if isinstance(item, dict) and "path" in item
            else resolve(item)
            for item in suppression
        ]
    if isinstance(data.get("sandbox"), dict) and data["sandbox"].get("config"):
        data["sandbox"] = {**data["sandbox"], "config": resolve(data["sandbox"]["config"])}
    data["state_dir"] = resolve(data.get("state_dir", "../.campaign-state"))
    data["output_dir"] = resolve(data.get("output_dir", f"../reports/{name}"))
    override = env.get("AITELIER_BASE_URL")
    if override:
        given = data.get("api")
        api: dict[str, Any] = given if isinstance(given, dict) else {}
        if str(api.get("base_url", "")).strip().rstrip("/") == "sandbox":
            # An environment variable left over from another job must never turn a
            # practice campaign into one that rings real phones.
            log.warning(
                "AITELIER_BASE_URL is set but ignored: %s says api.base_url: sandbox, and "
                "the variable only replaces a real API URL",
                path,
            )
        else:
            data["api"] = {**api, "base_url": override}
    return data


def _check_files(config: CampaignConfig, where: str) -> None:
    """ConfigError naming every input or suppression file that does not exist."""
    problems = []
    if not config.input.path.is_file():
        problems.append(
            ConfigError(
                f"input file {config.input.path} does not exist; fix input.path "
                "(relative paths start at the campaign file's folder)",
                path=where,
                key="input.path",
            )
        )
    for index, listed in enumerate(config.suppression):
        if not listed.path.is_file() and not listed.path.is_dir():  # a folder: registry files
            problems.append(
                ConfigError(
                    f"suppression list {listed.path} does not exist",
                    path=where,
                    key=f"suppression[{index}]",
                )
            )
    if problems:
        raise one_error(problems, where)
