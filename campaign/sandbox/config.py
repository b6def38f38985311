"""Sandbox configuration: keys, projects, scenarios, limits, faults, lifecycle speed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from campaign.sandbox.faults import FaultRule, FaultSpecError, parse_faults

ALL_SCOPES: frozenset[str] = frozenset(
    {
        "outbound:trigger",
        "sessions:read",
        "sessions:read:transcript",
        "webhooks:manage",
        "knowledge:manage",
    }
)
DEFAULT_KEY = "avp_test_sandbox"
DEFAULT_PROJECT = "prj_sandbox"
DEFAULT_SCENARIO = "scn_demo"
_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|min|h)\s*$")
_UNIT_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0}


class SandboxConfigError(ValueError):
    """A sandbox configuration value that cannot be used."""


@dataclass(frozen=True)
class SandboxLimit:
    """``count`` events allowed in any sliding window of ``window_s`` seconds."""

    count: int
    window_s: float


def parse_sandbox_limit(text: str) -> SandboxLimit:
    """Parse ``N/<duration>`` (units s|min|h): ``5/min``, ``1000/h``, ``30/10s``, ``5/2min``."""
    match = _LIMIT.match(text)
    if match is None:
        raise SandboxConfigError(f"limit {text!r} is not N/<duration> (e.g. 5/min, 30/10s)")
    count = int(match.group(1))
    window = float(match.group(2) or 1) * _UNIT_SECONDS[match.group(3)]
    if count < 1 or window <= 0:
        raise SandboxConfigError(f"limit {text!r} must allow at least 1 per positive window")
    return SandboxLimit(count, window)


@dataclass(frozen=True)
class SandboxKey:
    """An API key: the project it belongs to and the scopes it holds."""

    project_id: str
    scopes: frozenset[str] = ALL_SCOPES


def _default_keys() -> dict[str, SandboxKey]:
    return {DEFAULT_KEY: SandboxKey(DEFAULT_PROJECT, ALL_SCOPES)}


@dataclass
class SandboxConfig:
    """Everything that shapes one sandbox instance."""

    keys: dict[str, SandboxKey] = field(default_factory=_default_keys)
    scenarios: dict[str, frozenset[str]] = field(default_factory=dict)
    wallet_balance: str = "250.00"
    requests_per_minute: str = "60/min"
    requests_per_hour: str = "1000/h"
    outbound_calls: str = "5/min"
    faults: list[FaultRule] = field(default_factory=list)
    fault_seed: int = 0
    time_scale: float = 1.0
    ledger: bool = False
    idempotency_ttl_s: float = 86400.0
    state_file: Path | None = None
    allow_http_webhooks: bool = False
    # phone -> outcomes of its 1st, 2nd, ... call ("no_answer", "completed:declined",
    # "failed:carrier_rejected"); the last entry repeats.
    scripted_outcomes: dict[str, list[str]] = field(default_factory=dict)

    def scenarios_for(self, project_id: str) -> frozenset[str]:
        """Scenario ids known in a project (``scn_demo`` unless configured)."""
        return self.scenarios.get(project_id, frozenset({DEFAULT_SCENARIO}))

    def limit(self, name: str) -> SandboxLimit:
        """The parsed limit called ``name`` (requests_per_minute, …, outbound_calls)."""
        text: str = getattr(self, name)
        return parse_sandbox_limit(text)

    def validate(self) -> None:
        """Raise SandboxConfigError if any value is unusable."""
        for name in ("requests_per_minute", "requests_per_hour", "outbound_calls"):
            self.limit(name)
        try:
            Decimal(self.wallet_balance)
        except InvalidOperation:
            raise SandboxConfigError(f"wallet_balance {self.wallet_balance!r}") from None
        if self.time_scale <= 0:
            raise SandboxConfigError("time_scale must be > 0")
        for key, sandbox_key in self.keys.items():
            if not key or not sandbox_key.project_id:
                raise SandboxConfigError("keys need a non-empty key and project")
            unknown = sandbox_key.scopes - ALL_SCOPES
            if unknown:
                raise SandboxConfigError(f"unknown scopes {sorted(unknown)}")


_SIMPLE_KEYS = {
    "wallet_balance": str,
    "requests_per_minute": str,
    "requests_per_hour": str,
    "outbound_calls": str,
    "fault_seed": int,
    "time_scale": float,
    "ledger": bool,
    "idempotency_ttl_s": float,
    "allow_http_webhooks": bool,
}


def load_sandbox_config(path: Path) -> SandboxConfig:
    """Read a sandbox config from a YAML or JSON file (same keys as SandboxConfig)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        raw = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SandboxConfigError(f"{path}: cannot read sandbox config: {exc}") from None
    return config_from_mapping(raw or {}, source=str(path))


def config_from_mapping(raw: Any, source: str = "config") -> SandboxConfig:
    """Build a SandboxConfig from a parsed YAML/JSON mapping."""
    if not isinstance(raw, dict):
        raise SandboxConfigError(f"{source}: top level must be a mapping")
    config = SandboxConfig()
    for name, value in raw.items():
        if name in _SIMPLE_KEYS:
            setattr(config, name, _SIMPLE_KEYS[name](value))
        elif name == "limits" and isinstance(value, dict):
            for limit_name, limit_value in value.items():
                if limit_name not in ("requests_per_minute", "requests_per_hour", "outbound_calls"):
                    raise SandboxConfigError(f"{source}: unknown limit {limit_name!r}")
                setattr(config, limit_name, str(limit_value))
        elif name == "keys" and isinstance(value, dict):
            config.keys = {
                str(key): SandboxKey(
                    str(spec.get("project", DEFAULT_PROJECT)),
                    frozenset(spec.get("scopes", sorted(ALL_SCOPES))),
                )
                for key, spec in value.items()
            }
        elif name == "scenarios" and isinstance(value, dict):
            config.scenarios = {str(p): frozenset(map(str, s)) for p, s in value.items()}
        elif name == "faults":
            config.faults = _faults_from(value, source)
        elif name == "state_file":
            config.state_file = Path(value) if value else None
        elif name == "scripted_outcomes" and isinstance(value, dict):
            config.scripted_outcomes = {str(p): [str(o) for o in v] for p, v in value.items()}
        else:
            raise SandboxConfigError(f"{source}: unknown or malformed key {name!r}")
    config.validate()
    return config


def _faults_from(value: Any, source: str) -> list[FaultRule]:
    specs = [value] if isinstance(value, str) else list(value or [])
    try:
        return [rule for spec in specs for rule in parse_faults(str(spec))]
    except FaultSpecError as exc:
        raise SandboxConfigError(f"{source}: {exc}") from None
