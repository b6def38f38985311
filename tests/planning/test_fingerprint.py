"""The plan fingerprint changes with everything a plan reads, and only with that."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from campaign.config.model import load_campaign
from campaign.planning.fingerprint import plan_fingerprint

DAY = date(2026, 12, 1)


def _fingerprint(tmp_path: Path, extra: str = "", opted_out: tuple[str, ...] = ()) -> str:
    (tmp_path / "c.yaml").write_text(
        "campaign: fp\nscenario_id: s\n"
        "input: {path: contacts.csv, default_region: US}\n"
        "suppression: [dnc.csv, registry]\n" + extra
    )
    return plan_fingerprint(load_campaign(tmp_path / "c.yaml", env={}), opted_out, today=DAY)


def test_the_fingerprint_follows_what_the_plan_reads(tmp_path: Path) -> None:
    (tmp_path / "contacts.csv").write_text("phone\n(212) 555-0100\n")
    (tmp_path / "dnc.csv").write_text("phone\n+12125550199\n")
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "212.txt").write_text("2125550198\n")
    first = _fingerprint(tmp_path)
    assert _fingerprint(tmp_path) == first
    # Settings that only pace or route the calls leave it alone.
    assert _fingerprint(tmp_path, "limits: {calls: 9/min}\nretry: {max_attempts: 2}\n") == first
    changed = {
        "calling hours": _fingerprint(tmp_path, 'calling_hours: {start: "10:00"}\n'),
        "opt-outs": _fingerprint(tmp_path, opted_out=("+12125550100",)),
    }
    (tmp_path / "dnc.csv").write_text("phone\n+12125550199\n+12125550100\n")
    changed["list"] = _fingerprint(tmp_path)
    (tmp_path / "registry" / "212.txt").write_text("2125550198\n2125550100\n")
    changed["registry folder"] = _fingerprint(tmp_path)
    (tmp_path / "contacts.csv").write_text("phone\n(212) 555-0100\n(212) 555-0101\n")
    changed["input"] = _fingerprint(tmp_path)
    config = load_campaign(tmp_path / "c.yaml", env={})
    changed["day"] = plan_fingerprint(config, (), today=date(2026, 12, 2))
    assert len({first, *changed.values()}) == len(changed) + 1, changed
