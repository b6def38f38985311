"""The sample campaign has what the README says it has (checked with plain csv + phonenumbers)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import phonenumbers
import pytest

from campaign.config.model import load_campaign
from campaign.planning.plan import plan_rows

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
CONTACTS = SAMPLE / "spring_contacts.csv"
DO_NOT_CALL = SAMPLE / "do_not_call.csv"
SPRING = ROOT / "pipelines" / "spring.yaml"
EXCEL = re.compile(r"^\d\.\d+E\+\d+$|^\d+\.0$")


def contacts() -> list[dict[str, str]]:
    with CONTACTS.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def to_e164(raw: str, region: str | None) -> str | None:
    """The valid E.164 number a careful human would read in ``raw``, or None."""
    text = raw.strip()
    if EXCEL.match(text):
        digits = str(int(Decimal(text)))
        # Excel's display precision (4.47401E+11) leaves fewer digits than the number had.
        if "E" in text and len(text.split("E")[0].replace(".", "")) < len(digits):
            return None
        text = "+" + digits
    try:
        number = phonenumbers.parse(text, region or "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def test_contacts_look_like_a_crm_export() -> None:
    raw = CONTACTS.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # Excel's "CSV UTF-8"
    rows = contacts()
    assert 280 <= len(rows) <= 320
    assert {"customer_id", "first_name", "last_name", "phone", "country", "plan", "email"} <= set(
        rows[0]
    )
    assert any(not r["first_name"].isascii() for r in rows)  # Zoë, Müller, Côté …


def test_mixed_countries_and_formats() -> None:
    rows = contacts()
    countries = Counter(r["country"] for r in rows if r["country"])
    expected = {"US", "CA", "GB", "FR", "DE", "ES", "IT", "NL", "AU", "BR", "MX", "IN"}
    assert expected <= set(countries)
    assert any(not r["country"] for r in rows)  # left empty: default_region applies
    phones = [r["phone"] for r in rows]

    def some(predicate: str) -> int:
        return sum(1 for p in phones if re.search(predicate, p))

    assert some(r"^\+\d+$") >= 10  # E.164
    assert some(r"^\+\d+ ") >= 10  # international with spaces
    assert some(r"^00\d") >= 3  # 00 international prefix
    assert some(r"^011 ") >= 3  # US international prefix
    assert some(r"^\(\d{3}\) \d{3}-\d{4}$") >= 10  # US national
    assert some(r"^\d\.\d+E\+\d+$") >= 3  # Excel scientific notation
    assert some(r"^\d+\.0$") >= 3  # Excel trailing .0
    assert some(r"ext\. \d+$") >= 1  # extension
    assert some(r"[A-Z]{4,}") >= 2  # vanity numbers (1-800-FLOWERS)


def test_most_rows_are_valid_numbers_and_a_few_are_not() -> None:
    rows = contacts()
    numbers = [to_e164(r["phone"], r["country"] or None) for r in rows]
    valid = [n for n in numbers if n]
    invalid = [r["phone"] for r, n in zip(rows, numbers, strict=True) if n is None]
    assert len(valid) >= 270
    assert 8 <= len(invalid) <= 20
    assert "" in invalid  # empty
    assert any(re.search(r"[a-z]", p) for p in invalid)  # words instead of a number
    assert any(p.isdigit() and len(p) < 7 for p in invalid)  # too short
    assert "1-800-FLOWERS" not in invalid  # vanity numbers are real numbers


def test_duplicates_are_present() -> None:
    rows = contacts()
    by_number = Counter(to_e164(r["phone"], r["country"] or None) for r in rows)
    by_number.pop(None, None)
    twice = [n for n, count in by_number.items() if count > 1]
    assert len(twice) >= 5
    exact = Counter(tuple(r.values()) for r in rows)
    assert any(count > 1 for count in exact.values())  # the same record exported twice


def test_do_not_call_list_hits_some_contacts_written_differently() -> None:
    with DO_NOT_CALL.open(encoding="utf-8", newline="") as handle:
        blocked = [r["phone"] for r in csv.DictReader(handle)]
    blocked_e164 = {to_e164(p, None) for p in blocked}
    assert None not in blocked_e164
    hits = [r for r in contacts() if to_e164(r["phone"], r["country"] or None) in blocked_e164]
    assert len(hits) >= 3
    # Most are written differently there: matching needs normalisation.
    assert sum(1 for r in hits if r["phone"] not in blocked) >= 3
    assert len(blocked_e164) > len(hits)  # some listed numbers are not customers


def test_generator_reproduces_the_committed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("sample_generate", SAMPLE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    module.main(tmp_path)
    for name in ("spring_contacts.csv", "do_not_call.csv"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name


def test_spring_campaign_targets_the_sandbox_with_raised_limits() -> None:
    config = load_campaign(SPRING, env={})
    assert config.is_sandbox
    assert config.calling_hours == "unrestricted"
    assert config.input.path == CONTACTS
    assert config.input.consent_column == "consent"
    assert [listed.path for listed in config.suppression] == [DO_NOT_CALL]
    assert config.limits.calls[0].count >= 100
    assert config.retry.min_interval_s == 4 * 3600
    assert config.sandbox.time_scale < 1
    assert config.output_dir == ROOT / "reports" / "spring-renewals-2026"


def test_the_plan_accounts_for_every_row() -> None:
    result = plan_rows(load_campaign(SPRING, env={}), workers=1)
    states = Counter(row.state for row in result.rows)
    assert sum(states.values()) == len(contacts())
    assert states["callable"] >= 260
    assert states["duplicate"] >= 5
    assert states["suppressed"] >= 3
    assert states["rejected"] >= 8
    lines = [row.line for row in result.rows]
    assert lines == sorted(lines) and lines[0] == 2  # line 1 is the header


def test_us_customers_without_recorded_consent_are_rejected_and_no_one_else() -> None:
    result = plan_rows(load_campaign(SPRING, env={}), workers=1)
    consent = {row["customer_id"]: row["consent"] for row in contacts()}
    # Read with plain csv: the US customers whose consent cell says nothing or "no".
    refused = {
        row["customer_id"]
        for row in contacts()
        if row["consent"].strip().lower() in ("", "no", "n", "withdrawn")
        and (to_e164(row["phone"], row["country"] or "US") or "").startswith("+1")
        and row["country"] in ("US", "")
    }
    assert len(refused) == 5
    rejected = {
        row.row_key for row in result.rows if row.reason and "no recorded consent" in row.reason
    }
    assert rejected == refused
    assert result.counts.rejected["no recorded consent"] == 5
    # Everyone else who is callable has a consent value the README lists.
    callable_values = {consent[row.row_key] for row in result.rows if row.state == "callable"}
    assert callable_values <= {"yes", "Yes", "Y", "TRUE", "x", "opt-in", "1", "2025-06-14"}
    assert "" not in callable_values


def _run_campaign(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITELIER_")}
    env["COLUMNS"] = "120"
    script = Path(sys.executable).with_name("campaign")
    return subprocess.run(
        [str(script), "run", "pipelines/spring.yaml"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


class _Metrics(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._key: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._key = dict(attrs).get("data-metric") or self._key

    def handle_data(self, data: str) -> None:
        if self._key is not None:
            self.found.append((self._key, data))
            self._key = None

    def handle_endtag(self, tag: str) -> None:
        if self._key is not None:  # an empty element: the value is ""
            self.found.append((self._key, ""))
            self._key = None


@pytest.mark.slow
def test_the_sample_campaign_runs_end_to_end_and_its_outputs_agree(tmp_path: Path) -> None:
    for folder in ("pipelines", "sample_data"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    first = _run_campaign(tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    out_dir = tmp_path / "reports" / "spring-renewals-2026"
    assert "report: reports/spring-renewals-2026/report.html" in first.stdout
    assert (tmp_path / ".campaign-state" / "spring-renewals-2026.log").exists()

    summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    with (out_dir / "results.csv").open(encoding="utf-8", newline="") as handle:
        results = list(csv.DictReader(handle))
    # results.csv: every input row once, in input order, joined to the source.
    source = contacts()
    assert [r["customer_id"] for r in results] == [s["customer_id"] for s in source]
    assert [int(r["line"]) for r in results] == list(range(2, len(source) + 2))
    assert summary["rows_total"] == len(results)
    assert Counter(r["state"] for r in results) == {
        k: v for k, v in summary["by_state"].items() if v
    }
    assert sum(int(r["attempts"]) for r in results) == summary["attempts_total"]
    called = [r for r in results if int(r["attempts"]) > 0]
    assert summary["funnel"]["called"] == len(called) >= 250
    answered = [r for r in called if r["last_status"] == "completed"]
    assert summary["funnel"]["answered"] == len(answered)
    goals = [r for r in results if r["goal_achieved"] == "true"]
    assert summary["funnel"]["goal_achieved"] == len(goals) > 0
    assert summary["calls_placed"] >= len(called)
    assert summary["by_state"]["pending"] == 0  # everything callable was called
    assert all(r["reason"] for r in results if r["state"] != "done")

    # report.html shows the same numbers.
    page = _Metrics()
    page.feed((out_dir / "report.html").read_text(encoding="utf-8"))
    assert len(page.found) >= 10
    for key, text in page.found:
        value: object = summary
        for part in key.split("."):
            value = value[part]  # type: ignore[index]
        assert text == ("" if value is None else str(value)), key

    # Rerunning at once places no new call and says when the retries fall due.
    second = _run_campaign(tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    again = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    assert again["calls_placed"] == summary["calls_placed"]
    if summary["by_state"]["retry_scheduled"]:
        # the sample retries no_answer/busy after 4 h
        assert re.search(r"falls due .+, in 3 h 5\d min \(retry\)", second.stdout), second.stdout
