"""The campaign file: YAML → validated, typed settings; the one place for defaults.

Every error names the file, the key path (``retry.max_attempts``) and the fix. Paths in
the file are relative to the file's folder. The API key is only ever read from the
environment and is kept out of ``repr``, ``str`` and ``model_dump``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from datetime import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

import phonenumbers
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from campaign.errors import ConfigError
from campaign.limits import Limit, parse_limit

DEFAULT_BASE_URL = "https://api.aitelier.org/v1"
DEFAULT_KEY_ENV = "AITELIER_API_KEY"
SANDBOX_API_KEY = "avp_test_sandbox"
# Final call statuses of the API (contract §5) after which another attempt makes sense.
RETRYABLE_STATUSES = ("no_answer", "busy", "voicemail", "failed", "canceled")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|min|h|d)?\s*$")
_DURATION_UNITS = {None: 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_CAMPAIGN_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_HHMM_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_duration(value: object) -> float:
    """Seconds from ``90s``, ``30min``, ``4h``, ``1.5h``, ``2d`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; write e.g. 90s, 30min, 4h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; write e.g. 90s, 30min, 4h or 1.5h")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"{value!r}: a duration cannot be negative")
    return seconds


def _parse_limits(value: object) -> list[Limit]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("at least one limit is needed, e.g. 5/min")
    limits = []
    for item in items:
        if isinstance(item, Limit):
            limits.append(item)
        else:
            limits.append(parse_limit(str(item)))
    return limits


def _parse_region(value: object) -> str | None:
    if value is None:
        return None
    region = str(value).strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not an ISO 3166 alpha-2 region code such as US, GB, FR")
    return region


def _parse_hhmm(value: object) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 09:00 as the sexagesimal integer 540
        value = f"{value // 60:02d}:{value % 60:02d}"
    match = _HHMM_RE.match(str(value).strip())
    if not match:
        raise ValueError(f'{value!r} is not a time of day; write HH:MM such as "09:00"')
    return time(int(match.group(1)), int(match.group(2)))


def _parse_days(value: object) -> frozenset[int]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple | set | frozenset) or not items:
        raise ValueError("days must be a list such as [mon, tue, wed, thu, fri]")
    days: set[int] = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
            days.add(item)
            continue
        text = str(item).strip().lower()[:3] if "-" not in str(item) else str(item).lower()
        if "-" in text:  # a range such as mon-fri
            first, _, last = (part.strip()[:3] for part in text.partition("-"))
            if first not in DAY_NAMES or last not in DAY_NAMES:
                raise ValueError(f"{item!r} is not a day range; write e.g. mon-fri")
            start, end = DAY_NAMES.index(first), DAY_NAMES.index(last)
            days.update(
                range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)]
            )
        elif text in DAY_NAMES:
            days.add(DAY_NAMES.index(text))
        else:
            raise ValueError(f"{item!r} is not a day; use mon, tue, wed, thu, fri, sat, sun")
    return frozenset(days)


Duration = Annotated[float, BeforeValidator(parse_duration)]
Limits = Annotated[list[Limit], BeforeValidator(_parse_limits)]
Region = Annotated[str | None, BeforeValidator(_parse_region)]


DEFAULT_STOP_BEFORE_CLOSE_S = 300.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CallingHours(_Model):
    """Recipient-local calling hours; they can only narrow the legal defaults."""

    start: Annotated[time, BeforeValidator(_parse_hhmm)] = time(8, 0)
    end: Annotated[time, BeforeValidator(_parse_hhmm)] = time(21, 0)
    days: Annotated[frozenset[int], BeforeValidator(_parse_days)] = frozenset(range(7))
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

    @field_validator("phone_column")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the phone column name cannot be empty")
        return value


class RetryConfig(_Model):
    """Which statuses are retried, how often and how far apart."""

    statuses: list[str] = Field(default_factory=lambda: ["no_answer", "busy"])
    max_attempts: int = Field(3, ge=1, le=20)
    min_interval_s: Duration = Field(4 * 3600.0, alias="min_interval")
    stop_outcomes: list[str] = Field(default_factory=lambda: ["opted_out", "wrong_person"])

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
            raise ValueError(f"{value!r} is not an http(s) URL or 'sandbox'")
        return value


class SandboxSettings(_Model):
    """Emulator settings, used only with ``api.base_url: sandbox``."""

    time_scale: float = Field(1.0, gt=0)
    faults: str | None = None
    config: Path | None = None
    wallet_balance: str | None = None


class CampaignConfig(_Model):
    """A validated campaign file."""

    source_path: Path
    campaign: str
    scenario_id: str
    mode: Literal["calls", "batches"] = "calls"
    input: InputConfig
    suppression: list[Path] = Field(default_factory=list)
    calling_hours: CallingHours | Literal["unrestricted"] | None = None
    retry: RetryConfig = Field(default_factory=RetryConfig)  # type: ignore[arg-type]
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)  # type: ignore[arg-type]
    cost_estimate: Decimal | None = None
    api: ApiConfig = Field(default_factory=ApiConfig)
    priority: float = Field(1.0, gt=0)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)  # type: ignore[arg-type]
    state_dir: Path
    output_dir: Path

    _api_key: str | None = PrivateAttr(default=None)

    @field_validator("campaign")
    @classmethod
    def _campaign_name(cls, value: str) -> str:
        if not _CAMPAIGN_RE.match(value):
            raise ValueError(
                f"{value!r} must be 1-100 characters of A-Z a-z 0-9 . _ - (it names files)"
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
            raise ValueError(f'{value!r} is not an amount such as "0.12"') from None
        if not cost.is_finite() or cost < 0:
            raise ValueError(f'{value!r} must be a non-negative amount such as "0.12"')
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
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("campaign file not found", path=where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the campaign file ({exc})", path=where) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"not valid YAML{line}: {problem}", path=where) from None
    if not isinstance(document, dict):
        raise ConfigError("the campaign file must be a YAML mapping of keys", path=where)
    data = _with_defaults(document, path, env)
    try:
        config = CampaignConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, where) from None
    _check_files(config, where)
    key = env.get("AITELIER_API_KEY") or env.get(config.api.key_env) or None
    config._api_key = key
    return config


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
    if isinstance(suppression, str):
        suppression = [suppression]
    if isinstance(suppression, list):
        data["suppression"] = [resolve(item) for item in suppression]
    if isinstance(data.get("sandbox"), dict) and data["sandbox"].get("config"):
        data["sandbox"] = {**data["sandbox"], "config": resolve(data["sandbox"]["config"])}
    data["state_dir"] = resolve(data.get("state_dir", "../.campaign-state"))
    data["output_dir"] = resolve(data.get("output_dir", f"../reports/{name}"))
    if env.get("AITELIER_BASE_URL"):
        api = data.get("api")
        data["api"] = {
            **(api if isinstance(api, dict) else {}),
            "base_url": env["AITELIER_BASE_URL"],
        }
    return data


def _check_files(config: CampaignConfig, where: str) -> None:
    if not config.input.path.is_file():
        raise ConfigError(
            f"input file {config.input.path} does not exist; fix input.path "
            "(relative paths start at the campaign file's folder)",
            path=where,
            key="input.path",
        )
    for index, list_path in enumerate(config.suppression):
        if not list_path.is_file():
            raise ConfigError(
                f"suppression list {list_path} does not exist",
                path=where,
                key=f"suppression[{index}]",
            )


def _config_error(exc: ValidationError, where: str) -> ConfigError:
    """The first validation problem as one sentence naming the key path and the fix."""
    error = exc.errors()[0]
    loc = [part for part in error["loc"] if not _is_union_tag(part)]
    key = _key_path(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = _valid_keys(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
        return ConfigError(f"unknown key '{loc[-1]}'{hint}", path=where, key=key)
    if kind == "missing":
        return ConfigError("required key is missing", path=where, key=key)
    if loc == ["calling_hours"] and not isinstance(error.get("input"), dict | None):
        return ConfigError(
            'write \'unrestricted\' or {start: "09:00", end: "20:00", days: [mon, ...]}',
            path=where,
            key=key,
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    got = repr(error.get("input"))
    # never echo api.key_env: someone may have pasted the key itself there
    if got not in message and key != "api.key_env":
        message = f"{message} (got {got})"
    return ConfigError(message, path=where, key=key)


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and (
        part[:1].isupper() or part.startswith(("literal[", "function-"))
    )


def _key_path(loc: Sequence[object]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _valid_keys(loc: Sequence[object]) -> list[str]:
    """The keys allowed at the given path, as written in the YAML file."""
    model: type[BaseModel] = CampaignConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None) if field else None
        found = [
            arg
            for arg in (annotation, *getattr(annotation, "__args__", ()))
            if isinstance(arg, type) and issubclass(arg, BaseModel)
        ]
        if not found:
            return []
        model = found[0]
    internal = {"source_path"}
    return [
        field.alias or name for name, field in model.model_fields.items() if name not in internal
    ]
