"""A strict emulator of the Aitelier REST API (docs/api/openapi.yaml), for tests and demos.

It shares no code with the client it tests. Start it in-process with ``start_sandbox`` or
``create_app``, or as a process with ``campaign sandbox serve``.
"""

from campaign.sandbox.app import create_app
from campaign.sandbox.clock import SandboxClock, SandboxFakeClock, SandboxSystemClock
from campaign.sandbox.config import (
    ALL_SCOPES,
    DEFAULT_KEY,
    DEFAULT_PROJECT,
    DEFAULT_SCENARIO,
    SandboxConfig,
    SandboxConfigError,
    SandboxKey,
    load_sandbox_config,
)
from campaign.sandbox.delivery import sign
from campaign.sandbox.faults import FaultRule, FaultSpecError, parse_faults
from campaign.sandbox.server import RunningSandbox, start_sandbox

__all__ = [
    "ALL_SCOPES",
    "DEFAULT_KEY",
    "DEFAULT_PROJECT",
    "DEFAULT_SCENARIO",
    "FaultRule",
    "FaultSpecError",
    "RunningSandbox",
    "SandboxClock",
    "SandboxConfig",
    "SandboxConfigError",
    "SandboxFakeClock",
    "SandboxKey",
    "SandboxSystemClock",
    "create_app",
    "load_sandbox_config",
    "parse_faults",
    "sign",
    "start_sandbox",
]
