"""The columns a campaign file names must be in the input's header: all checked at once."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from campaign.config.model import CampaignConfig
from campaign.config.problems import one_error
from campaign.errors import ConfigError
from campaign.inputs.ingest import column_key, column_list
from campaign.planning.consent import check_consent_keys


def check_columns(config: CampaignConfig, header: Sequence[str]) -> None:
    """ConfigError if configured columns are not in the input's header (every one at once)."""
    check_consent_keys(config)
    wanted: list[tuple[str, str | None]] = [
        ("input.phone_column", config.input.phone_column),
        ("input.region_column", config.input.region_column),
        ("input.key_column", config.input.key_column),
        ("input.consent_column", config.input.consent_column),
        ("input.state_column", config.input.state_column),
        ("input.postal_code_column", config.input.postal_code_column),
    ]
    wanted += [(f"input.variables[{i}]", name) for i, name in enumerate(config.input.variables)]
    problems = []
    for key, name in wanted:
        if name is not None and column_key(name) not in header:
            close = difflib.get_close_matches(column_key(name), list(header), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(
                ConfigError(
                    f"column '{name}' is not in {config.input.path.name}{hint} "
                    f"(columns: {column_list(header)})",
                    path=str(config.source_path),
                    key=key,
                )
            )
    if problems:
        raise one_error(problems, str(config.source_path))
