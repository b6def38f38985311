"""``api.base_url: sandbox``: the emulator started in-process on a real loopback socket."""

from __future__ import annotations

from typing import Any

from campaign.clock import Clock
from campaign.config.model import CampaignConfig


def _limit_text(limit: Any) -> str:
    return f"{limit.count}/{limit.window:g}s"


async def start_for_campaign(config: CampaignConfig, clock: Clock | None = None) -> Any:
    """Start the sandbox with the campaign's limits and sandbox settings; returns it."""
    from campaign.sandbox import (  # imported late: only sandbox campaigns need it
        SandboxConfig,
        load_sandbox_config,
        parse_faults,
        start_sandbox,
    )

    settings = config.sandbox
    sandbox_config = (
        load_sandbox_config(settings.config) if settings.config is not None else SandboxConfig()
    )
    sandbox_config.outbound_calls = _limit_text(config.limits.calls[0])
    for limit in config.limits.requests:
        name = "requests_per_hour" if limit.window >= 3600 else "requests_per_minute"
        setattr(sandbox_config, name, _limit_text(limit))
    if settings.faults:
        sandbox_config.faults = [*sandbox_config.faults, *parse_faults(settings.faults)]
    if settings.wallet_balance is not None:
        sandbox_config.wallet_balance = settings.wallet_balance
    if settings.time_scale != 1.0 or settings.config is None:
        sandbox_config.time_scale = settings.time_scale
    sandbox_config.state_file = config.state_dir / f"sandbox-{config.campaign}.json"
    sandbox_config.ledger = True
    if clock is not None:
        return await start_sandbox(sandbox_config, clock=clock)
    return await start_sandbox(sandbox_config)
