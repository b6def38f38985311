"""A list that is mostly rejected: a loud warning, or a refused run when the campaign says so."""

import logging
from pathlib import Path

import pytest

from campaign.config.model import CampaignConfig, load_campaign
from campaign.errors import InputError
from campaign.planning.plan import plan_rows
from campaign.planning.rejects import (
    WARN_REJECT_SHARE,
    check_reject_share,
    counted_share,
    reject_warning,
)
from campaign.planning.windows import planned_rows

# 10 rows, 6 of them rejected (no such numbers), like the 23 of 40.
MOSTLY_BAD = "phone\n" + "".join(f"07911 12345{i}\n" for i in range(4)) + "n/a\n" * 6


def config_for(tmp_path: Path, extra: str = "") -> CampaignConfig:
    (tmp_path / "contacts.csv").write_text(MOSTLY_BAD, encoding="utf-8")
    (tmp_path / "c.yaml").write_text(
        "campaign: t\nscenario_id: s\ncalling_hours: unrestricted\n"
        "input:\n  path: contacts.csv\n  default_region: GB\n" + extra
    )
    return load_campaign(tmp_path / "c.yaml", env={})


def test_a_mostly_rejected_list_warns_loudly_in_the_run_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(tmp_path)
    with caplog.at_level(logging.WARNING, logger="campaign"):
        found = check_reject_share(config, planned_rows(config, []))
    assert (found.rejected, found.rows) == (6, 10)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "6 of 10 rows (60%) are rejected — mostly not a phone number (6)" in warnings[0]
    assert f"over {WARN_REJECT_SHARE:.0%} of the list" in warnings[0]


def test_validate_counts_carry_the_same_warning(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    warning = reject_warning(config, counted_share(plan_rows(config).counts))
    assert warning is not None and warning.startswith("6 of 10 rows (60%) are rejected")


def test_max_reject_share_makes_a_run_refuse_with_exit_2(tmp_path: Path) -> None:
    config = config_for(tmp_path, "  max_reject_share: 0.5\n")
    with pytest.raises(InputError) as caught:
        check_reject_share(config, planned_rows(config, []))
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert message.startswith(f"{config.input.path}: 6 of 10 rows (60%) are rejected")
    assert "over input.max_reject_share 0.5" in message and "nothing was called" in message
    warning = reject_warning(config, counted_share(plan_rows(config).counts))
    assert warning is not None and "`campaign run` refuses to start" in warning


def test_a_list_under_the_limits_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(tmp_path, "  max_reject_share: 0.7\n")
    with caplog.at_level(logging.WARNING, logger="campaign"):
        check_reject_share(config, planned_rows(config, [])[:5])  # 1 of 5 rejected: 20 %
    assert not caplog.records
