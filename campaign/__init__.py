"""campaign: outbound voice-AI call campaigns against the Aitelier REST API.

The Python API (``campaign.public``; the README's "Python API" section)::

    import campaign

    report = campaign.run("pipelines/spring.yaml", until="20:00")
    if report.error is not None:
        print(report.exit_code, report.outcome, report.error)

``import campaign`` stays cheap for the CLI and the sandbox's own process: the functions
come from a module that imports the rest only when called, and the types are imported on
first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from campaign.public import load, run, run_async, status, validate

# type name → the module that defines it, imported on first use
_TYPES = {
    "RunReport": "campaign.pipeline.report",
    "Outcome": "campaign.pipeline.report",
    "ProgressDisplay": "campaign.pipeline.progress",
    "ValidationSummary": "campaign.pipeline.validate",
    "CampaignStatus": "campaign.pipeline.status",
    "CampaignConfig": "campaign.config.model",
    "CampaignError": "campaign.errors",
}

__all__ = [
    "CampaignConfig",
    "CampaignError",
    "CampaignStatus",
    "Outcome",
    "ProgressDisplay",
    "RunReport",
    "ValidationSummary",
    "load",
    "run",
    "run_async",
    "status",
    "validate",
]

if TYPE_CHECKING:
    from campaign.config.model import CampaignConfig
    from campaign.errors import CampaignError
    from campaign.pipeline.progress import ProgressDisplay
    from campaign.pipeline.report import Outcome, RunReport
    from campaign.pipeline.status import CampaignStatus
    from campaign.pipeline.validate import ValidationSummary


def __getattr__(name: str) -> Any:
    module = _TYPES.get(name)
    if module is None:
        raise AttributeError(f"module 'campaign' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
