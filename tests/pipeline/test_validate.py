import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign.cli import main
from campaign.config.model import load_campaign
from campaign.pipeline.validate import validate_campaign

CONTACTS = """\
phone,name
+1 (212) 736-5000,Ann
+1 212 736 5000,Ann again
+1 305 555 1234,Flo
+33 6 12 34 56 78,Amélie
not a phone,Bad
+44 9098 790000,Premium
+44 7911 123456,Olivia
"""


def write_campaign(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    (tmp_path / "dnc.txt").write_text("+44 7911 123456\n")
    path = tmp_path / "spring.yaml"
    path.write_text(
        "campaign: spring\nscenario_id: scn_1\n"
        "compliance: {consent: attested}\nsuppression: [dnc.txt]\n"
        "input: {path: contacts.csv, default_region: US, variables: [name]}\n" + extra
    )
    return path


def test_counts_and_projection(tmp_path: Path) -> None:
    config = load_campaign(write_campaign(tmp_path), env={})
    # Wednesday 2026-06-03 12:00 UTC: 08:00 in New York, 14:00 in Paris — all windows open
    summary = validate_campaign(config, now=datetime(2026, 6, 3, 12, tzinfo=UTC))
    data = summary.to_dict()
    assert (data["rows_read"], data["callable"], data["duplicates"]) == (7, 3, 1)
    assert data["rejected_by_reason"] == {"not a phone number": 1, "premium-rate number": 1}
    assert data["suppressed_by_list"] == {"on suppression list dnc.txt": 1}
    assert data["by_country"] == {"US": 2, "FR": 1}
    assert data["by_timezone"] == {"America/New_York": 2, "Europe/Paris": 1}
    projection = data["projection"]
    assert projection["calls"] == 3 and projection["calls_per_hour"] == 300
    assert projection["calling_days"] == 1
    assert projection["finishes_at"] == "2026-06-03T12:15:00+00:00"


def test_projection_waits_for_calling_hours(tmp_path: Path) -> None:
    config = load_campaign(write_campaign(tmp_path, "limits: {calls: 1/h}\n"), env={})
    # Saturday 23:00 UTC: Paris is closed until 08:00, and only one call an hour is allowed
    summary = validate_campaign(config, now=datetime(2026, 6, 6, 23, tzinfo=UTC))
    projection = summary.projection
    assert projection.calls_per_hour == 1
    assert projection.finishes_at is not None
    assert projection.finishes_at > datetime(2026, 6, 7, 6, tzinfo=UTC)
    assert projection.calling_hours >= 3  # one call an hour, three calls


def test_unrestricted_projection_is_rate_only(tmp_path: Path) -> None:
    config = load_campaign(write_campaign(tmp_path, "calling_hours: unrestricted\n"), env={})
    summary = validate_campaign(config, now=datetime(2026, 6, 6, 23, tzinfo=UTC))
    assert summary.projection.unrestricted
    assert summary.projection.calling_hours == pytest.approx(3 / 300)


def test_cli_prints_counts_and_needs_no_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(write_campaign(tmp_path))], env={})
    assert result.exit_code == 0, result.output
    assert "callable             3" in result.output
    assert "premium-rate number" in result.output
    assert "calls at 300 calls/hour" in result.output


def test_cli_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(write_campaign(tmp_path)), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output)["callable"] == 3


def test_cli_exit_2_names_file_and_key(tmp_path: Path) -> None:
    path = write_campaign(tmp_path, "retry: {max_atempts: 2}\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: {path}: retry.max_atempts: unknown key 'max_atempts'; did you mean 'max_attempts'?"
    )


def test_cli_exit_2_for_unreadable_input(tmp_path: Path) -> None:
    path = write_campaign(tmp_path)
    (tmp_path / "contacts.csv").write_bytes(b"")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert "contacts.csv: the file is empty" in result.output
