"""Frequency caps: calls to one number counted across every campaign sharing the state dir.

The send gate checks the caps and records the call in one transaction of the state dir's
ledger, keyed by the attempt: a row over a cap waits (with the rule and when it is
callable again), a re-send of the same attempt is one call, two runs at once never both
take the last slot, and a state's own cap applies without being configured.
"""

from __future__ import annotations

import csv
import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.crash import read_ledger, run_env, sandbox_process, start_run, write_crash_campaign
from support.postgres import Backend

import campaign
from campaign.config.limit import Limit, parse_limit
from campaign.config.model import CallingHours
from campaign.engine.gate import ALLOW, SendGate
from campaign.planning.frequency import (
    CONFIG_SOURCE,
    STATE_CAPS,
    Cap,
    caps_for,
    over_cap,
    zone_states,
)
from campaign.planning.windows import WindowBook
from campaign.store.checkpoint import RowIn, Store, StoredRow
from campaign.store.contacts import CALLS_FILE, CallLedger, Take
from campaign.store.optout import OptOutList

HOUR = 3600.0
DAY = 24 * HOUR
# Tuesday 2026-06-02 14:00 UTC = 10:00 in New York (EDT).
T0 = datetime(2026, 6, 2, 14, tzinfo=UTC).timestamp()
NY = ["America/New_York"]
MIAMI = "+13055550100"  # area code 305: Florida
MANHATTAN = "+12125550100"  # area code 212: New York, no state cap


def _gate(
    tmp_path: Path,
    number: str,
    us_state: str | None,
    configured: str,
    *,
    ledger: CallLedger | None = None,
) -> tuple[SendGate, StoredRow]:
    store = Store.open(tmp_path / "c.sqlite")
    row = RowIn(
        line=2, row_key="K1", raw_phone=number, e164=number, plan_state="callable",
        timezones=NY, us_state=us_state,
    )  # fmt: skip
    store.sync_rows([row], T0)
    limits = [parse_limit(configured)]
    gate = SendGate(
        store=store,
        suppression={},
        opt_outs=OptOutList(tmp_path),
        window_for=WindowBook(CallingHours()).window_for,
        stop_before_close_s=300.0,
        calls=ledger or CallLedger(tmp_path),
        caps_for=lambda r: caps_for(r.us_state, limits),
        campaign="spring",
    )
    return gate, store.row("K1")


# --- the rule table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("us_state", "states"),
    [
        ("FL", ("FL",)),
        ("US-?", None),  # unknown: every state's cap
        ("FL+GA", ("FL", "GA")),  # a combined zone (number and address)
        ("US-MD,US-VA", ("MD", "VA")),
        ("ON", ()),  # a Canadian province: no US state
        ("Florida", None),  # unreadable: fail closed
        ("ZZ", None),
        (None, ()),  # not a US number
    ],
)
def test_zone_states_reads_every_state_named_and_fails_closed(
    us_state: str | None, states: tuple[str, ...] | None
) -> None:
    assert zone_states(us_state) == states


def test_caps_for_adds_the_states_caps_to_the_configured_one() -> None:
    loose = [parse_limit("10/24h")]
    assert [c.source for c in caps_for("NY", loose)] == [CONFIG_SOURCE]
    florida = caps_for("FL", loose)
    assert [c.source for c in florida] == [CONFIG_SOURCE, "Fla. Stat. 501.616(6)(b)"]
    assert florida[1].limit == Limit(3, DAY)
    assert {c.state for c in caps_for("FL+MD", loose)} == {None, "FL", "MD"}
    unknown = caps_for("US-?", loose)
    assert {c.state for c in unknown[1:]} == set(STATE_CAPS)
    assert all(c.source for c in STATE_CAPS.values())


def test_over_cap_names_when_the_oldest_call_ages_out() -> None:
    caps = [Cap(Limit(3, DAY), "rule")]
    calls = [T0 - 5 * HOUR, T0 - 3 * HOUR, T0 - HOUR]
    assert over_cap(calls[1:], caps, T0) is None
    assert over_cap(calls, caps, T0) == (caps[0], T0 - 5 * HOUR + DAY)
    # A call exactly a window ago no longer counts.
    assert over_cap([T0 - DAY, *calls[1:]], caps, T0) is None
    # With the cap lowered below what was called, enough calls must age out.
    assert over_cap(calls, [Cap(Limit(2, DAY), "r2")], T0) == (
        Cap(Limit(2, DAY), "r2"), T0 - 3 * HOUR + DAY
    )  # fmt: skip


# --- the gate --------------------------------------------------------------------------------

# The ledger's behaviour is the same in the state dir's file and in PostgreSQL's shared
# schema (state_url): the gate tests below run on both.
LedgerOf = Callable[[Path], CallLedger]


@pytest.fixture
def ledger_of(state_backend: Backend) -> LedgerOf:
    """A calls-per-number ledger for a state dir, on the test's backend."""
    return lambda state_dir: CallLedger(state_dir, dsn=state_backend.url)


def test_florida_cap_applies_to_a_florida_number_whatever_the_campaign_allows(
    tmp_path: Path, ledger_of: LedgerOf
) -> None:
    gate, row = _gate(tmp_path, MIAMI, "FL", "10/24h", ledger=ledger_of(tmp_path))
    for n in range(3):
        assert gate.check(row, MIAMI, T0 + n * HOUR, attempt_key=f"k{n}").ok
    verdict = gate.check(row, MIAMI, T0 + 4 * HOUR, attempt_key="k3")
    assert not verdict.ok and not verdict.final and verdict.defer
    assert verdict.retry_at == T0 + DAY
    assert verdict.reason == (
        "frequency cap: 3 calls to this number in 24h (Fla. Stat. 501.616(6)(b)); "
        "callable again at 2026-06-03 10:00 local (America/New_York)"
    )
    # The refused call was not recorded; once the oldest ages out, one more may go.
    assert len(ledger_of(tmp_path).times(MIAMI, 0)) == 3
    assert gate.check(row, MIAMI, T0 + DAY, attempt_key="k3").ok


def test_a_new_york_number_gets_the_configured_cap_only(
    tmp_path: Path, ledger_of: LedgerOf
) -> None:
    gate, row = _gate(tmp_path, MANHATTAN, "NY", "4/24h", ledger=ledger_of(tmp_path))
    for n in range(4):
        assert gate.check(row, MANHATTAN, T0 + n * 60, attempt_key=f"k{n}").ok
    verdict = gate.check(row, MANHATTAN, T0 + HOUR, attempt_key="k4")
    assert verdict.defer and f"({CONFIG_SOURCE})" in (verdict.reason or "")


def test_a_resend_of_the_same_attempt_is_one_call(tmp_path: Path, ledger_of: LedgerOf) -> None:
    gate, row = _gate(tmp_path, MANHATTAN, "NY", "2/24h", ledger=ledger_of(tmp_path))
    assert gate.check(row, MANHATTAN, T0, attempt_key="spring:K1:1").ok
    # The run died after recording; the rerun sends the same attempt again.
    assert gate.check(row, MANHATTAN, T0 + 60, attempt_key="spring:K1:1").ok
    assert len(ledger_of(tmp_path).times(MANHATTAN, 0)) == 1
    assert gate.check(row, MANHATTAN, T0 + 120, attempt_key="spring:K1:2").ok
    assert not gate.check(row, MANHATTAN, T0 + 180, attempt_key="spring:K1:3").ok
    # The cap is full, but a re-send of a recorded attempt is still the same call.
    assert gate.check(row, MANHATTAN, T0 + 240, attempt_key="spring:K1:2").ok
    assert len(ledger_of(tmp_path).times(MANHATTAN, 0)) == 2


def test_without_a_key_the_gate_only_reads_the_caps(tmp_path: Path, ledger_of: LedgerOf) -> None:
    gate, row = _gate(tmp_path, MANHATTAN, "NY", "1/24h", ledger=ledger_of(tmp_path))
    assert gate.check(row, MANHATTAN, T0).ok
    assert gate.check(row, MANHATTAN, T0).ok
    assert ledger_of(tmp_path).times(MANHATTAN, 0) == []


def test_the_ledger_is_private(tmp_path: Path) -> None:
    gate, row = _gate(tmp_path, MANHATTAN, "NY", "1/24h")
    gate.check(row, MANHATTAN, T0, attempt_key="k")
    assert (tmp_path / CALLS_FILE).stat().st_mode & 0o777 == 0o600


class _SlowLedger(CallLedger):
    """A ledger whose decision takes a while: a race on the last slot would show."""

    def take(  # type: ignore[override]
        self, e164: str, attempt_key: str, *, allow: Callable[[Sequence[float]], bool], **kw: object
    ) -> Take:
        def slow(times: Sequence[float]) -> bool:
            threading.Event().wait(0.02)  # widens the window between reading and writing
            return allow(times)

        return super().take(e164, attempt_key, allow=slow, **kw)  # type: ignore[arg-type]


def test_concurrent_checks_never_let_two_take_the_last_slot(
    tmp_path: Path, state_backend: Backend
) -> None:
    ledger = _SlowLedger(tmp_path, dsn=state_backend.url)
    # Two campaigns' gates over one state dir, each with its own checkpoint.
    gates = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        gate, row = _gate(folder, MANHATTAN, "NY", "3/24h", ledger=ledger)
        gates.append((gate, row))
    ledger.take(MANHATTAN, "earlier", at=T0 - HOUR, since=0, allow=lambda t: True,
                campaign="x", row_key="r")  # fmt: skip

    def attempt(n: int) -> bool:
        # Rule 5 alone: the checkpoint of rules 1-4 is not shared across threads.
        gate, row = gates[n % 2]
        return gate.frequency_verdict(row, MANHATTAN, T0, ALLOW, attempt_key=f"key-{n}").ok

    with ThreadPoolExecutor(max_workers=8) as pool:
        passed = sum(pool.map(attempt, range(8)))
    assert passed == 2  # the two free slots, never more
    assert len(ledger.times(MANHATTAN, 0)) == 3


# --- two real runs sharing a state dir ---------------------------------------------------------

SHARED = ["+1 212 555 0100", "+1 212 555 0101"]


def _campaign(tmp_path: Path, name: str, phones: list[str]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    lines = ["customer_id,phone"] + [f"{name}{i},{p}" for i, p in enumerate(phones)]
    (folder / "contacts.csv").write_text("\n".join(lines) + "\n")
    path = folder / "c.yaml"
    path.write_text(
        f"""campaign: {name}
scenario_id: scn_demo
input: {{path: contacts.csv, default_region: US, key_column: customer_id}}
retry: {{max_attempts: 1}}
limits: {{calls: 100/10s, requests: [600/min, 20000/h]}}
compliance: {{consent: attested, max_calls_per_number: 1/24h}}
api: {{base_url: sandbox}}
sandbox: {{time_scale: 0.005}}
state_dir: ../state
output_dir: out
calling_hours: unrestricted
"""
    )
    return path


def _results(path: Path) -> dict[str, dict[str, str]]:
    with (path.parent / "out" / "results.csv").open(newline="") as handle:
        return {r["customer_id"]: r for r in csv.DictReader(handle)}


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AITELIER_API_KEY", raising=False)
    monkeypatch.delenv("AITELIER_BASE_URL", raising=False)


def test_a_cap_hit_across_two_campaigns_sharing_the_state_dir(tmp_path: Path) -> None:
    first = _campaign(tmp_path, "spring", SHARED)
    second = _campaign(tmp_path, "winback", [*SHARED, "+1 212 555 0102"])

    one = campaign.run(first)
    assert one.exit_code == 0 and one.summary["calls_placed"] == 2

    two = campaign.run(second)
    assert two.exit_code == 0, two.lines
    assert two.summary["calls_placed"] == 1  # only the number spring did not call
    rows = _results(second)
    for key in ("winback0", "winback1"):
        assert rows[key]["state"] == "retry_scheduled", rows[key]
        assert "frequency cap: 1 call to this number in 24h" in rows[key]["reason"]
        assert "callable again at" in rows[key]["reason"]
    assert rows["winback2"]["state"] in ("done", "failed")
    # The run says when the capped rows fall due: when spring's calls age out, a day on.
    due = datetime.fromisoformat(two.summary["next_due"].replace("Z", "+00:00")).timestamp()
    assert due - time.time() > 23 * HOUR and two.summary["next_due_reason"] == "retry"

    # Across a rerun: still nothing new for the capped numbers, and no call counted twice.
    again = campaign.run(second)
    assert again.exit_code == 0
    assert "this run: 0 call(s) placed" in "\n".join(again.lines)
    assert _results(second)["winback0"]["state"] == "retry_scheduled"
    ledger = CallLedger(tmp_path / "state")
    assert ledger.distribution() == {1: 3}
    assert ledger.distribution("winback") == {1: 1}
    summary = json.loads((second.parent / "out" / "summary.json").read_text())
    assert summary["calls_placed"] == 1
    compliance = summary["compliance"]
    assert compliance["held_back_by_rule"]["frequency_cap"] == 2
    assert compliance["calls_per_number"] == {"1": 1}
    assert compliance["frequency_caps"]["configured"] == ["1/24h"]
    assert "Compliance" in (second.parent / "out" / "report.html").read_text()


def test_batches_mode_counts_each_member_and_holds_the_capped_ones(tmp_path: Path) -> None:
    first = _campaign(tmp_path, "spring", SHARED)
    second = _campaign(tmp_path, "winback", [*SHARED, "+1 212 555 0102"])
    second.write_text(second.read_text().replace("scenario_id:", "mode: batches\nscenario_id:"))

    assert campaign.run(first).summary["calls_placed"] == 2
    two = campaign.run(second)
    assert two.exit_code == 0, two.lines
    rows = _results(second)
    assert rows["winback2"]["state"] in ("done", "failed")
    for key in ("winback0", "winback1"):
        assert rows[key]["state"] == "retry_scheduled", rows[key]
        assert "frequency cap" in rows[key]["reason"]
    assert CallLedger(tmp_path / "state").distribution("winback") == {1: 1}


# --- kill -9 and rerun: every call that rang is counted, each attempt once ------------------


@pytest.mark.slow
def test_kill_9_and_rerun_counts_each_call_that_rang_once(tmp_path: Path) -> None:
    rows = 30
    faults = "POST /v1/calls=reset_after@0.15,POST /v1/calls=error_after@0.1"
    with sandbox_process(tmp_path, faults=faults, call_limit="30/10s", seed=5) as url:
        path = write_crash_campaign(tmp_path, rows, "30/10s")
        env, log = run_env(url), tmp_path / "run.log"
        rng = random.Random(3)
        killed = 0
        for _ in range(5):
            proc = start_run(path, env, log)
            try:
                proc.wait(timeout=rng.uniform(0.8, 2.5))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed += 1
        assert killed >= 3
        for _ in range(6):
            if start_run(path, env, log).wait(timeout=180) == 0:
                break
        else:
            raise AssertionError(f"the campaign did not finish; see {log}")
        rang = {call["idempotency_key"]: call["phone"] for call in read_ledger(url)["calls"]}

    ledger = CallLedger(tmp_path / "state")
    counted = {
        row[0]: row[1] for row in ledger._connect().execute("SELECT attempt_key, e164 FROM calls")
    }
    # Every call the platform created is counted, under its attempt, for its number.
    assert {key: counted.get(key) for key in rang} == rang
    # Each counted call is an attempt of the checkpoint (a run killed between counting
    # and beginning it began it on the rerun, under the same key): nothing counted twice.
    store = Store.open(tmp_path / "state" / "crash.sqlite")
    assert set(counted) == {attempt.idempotency_key for attempt in store.attempts()}


def test_a_canadian_number_of_unknown_province_gets_no_us_state_cap() -> None:
    assert zone_states("CA-?") == ()
    assert zone_states("ON") == ()
