"""The send gate as a table: every reason a phone must not ring, and when it may."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from campaign.config.model import CallingHours
from campaign.engine.gate import SendGate
from campaign.planning.windows import WindowBook
from campaign.store.checkpoint import RowIn, Store, StoredRow
from campaign.store.optout import OptOutList

NY = ["America/New_York"]
# Tuesday 2026-06-02; New York is UTC-4 (EDT).
TUE = datetime(2026, 6, 2, tzinfo=UTC).timestamp()
HOUR = 3600.0
NY_10 = TUE + 14 * HOUR  # 10:00 in New York
NY_2057 = TUE + 24 * HOUR + 57 * 60  # 20:57 in New York (the window closes at 21:00)
NY_2050 = TUE + 24 * HOUR + 50 * 60
NY_03 = TUE + 7 * HOUR  # 03:00 in New York


@dataclass
class Case:
    name: str
    phone: str
    now: float
    ok: bool
    final: bool = False
    plan_state: str | None = None
    reason_has: str = ""
    dial_by: float | None = None


A, B, SUPPRESSED, OPTED_OUT = "+12125550100", "+12125550101", "+12125550102", "+12125550103"

CASES = [
    Case("inside the window, nothing against it", A, NY_10, ok=True),
    Case("on a suppression list", SUPPRESSED, NY_10, ok=False, final=True,
         plan_state="suppressed", reason_has="dnc.csv"),
    Case("on the opt-out list", OPTED_OUT, NY_10, ok=False, final=True,
         plan_state="suppressed", reason_has="opted out"),
    Case("already called by another row", B, NY_10, ok=False, final=True,
         plan_state="duplicate", reason_has="line 3"),
    Case("at night in New York", A, NY_03, ok=False, reason_has="calling hours"),
    Case("three minutes before close, inside the kept margin", A, NY_2057, ok=False,
         reason_has="before close"),
    Case("ten minutes before close", A, NY_2050, ok=True),
    Case("a batch row that would dial after the margin", A, NY_10, ok=False,
         dial_by=NY_2057, reason_has="before close"),
    Case("a batch row that dials in time", A, NY_10, ok=True, dial_by=NY_2050),
    Case("suppression wins over a closed window", SUPPRESSED, NY_03, ok=False, final=True,
         plan_state="suppressed"),
]  # fmt: skip


@pytest.fixture
def gate_and_row(tmp_path: Path) -> tuple[SendGate, StoredRow]:
    store = Store.open(tmp_path / "c.sqlite")
    rows = [
        RowIn(line=2, row_key="K1", raw_phone=A, e164=A, plan_state="callable", timezones=NY),
        RowIn(line=3, row_key="K2", raw_phone=B, e164=B, plan_state="callable", timezones=NY),
    ]
    store.sync_rows(rows, NY_10)
    store.begin_attempt("K2", 1, "key-k2-1", b"{}", NY_10, phone=B)
    opt_outs = OptOutList(tmp_path)
    opt_outs.add(OPTED_OUT, campaign="other", row_key="x", now=NY_10)
    gate = SendGate(
        store=store,
        suppression={SUPPRESSED: "dnc.csv"},
        opt_outs=opt_outs,
        window_for=WindowBook(CallingHours()).window_for,
        stop_before_close_s=300.0,
    )
    return gate, store.row("K1")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_send_gate_table(gate_and_row: tuple[SendGate, StoredRow], case: Case) -> None:
    gate, row = gate_and_row
    verdict = gate.check(row, case.phone, case.now, dial_by=case.dial_by)
    assert verdict.ok is case.ok, verdict
    assert verdict.final is case.final
    if case.plan_state:
        assert verdict.plan_state == case.plan_state
    assert case.reason_has in (verdict.reason or "")
    if verdict.ok:
        assert verdict.send_by is not None and verdict.send_by <= NY_2057
    if verdict.waits:
        assert verdict.retry_at is not None and verdict.retry_at > case.now


def test_a_row_may_retry_its_own_number(gate_and_row: tuple[SendGate, StoredRow]) -> None:
    gate, _ = gate_and_row
    store = gate.store
    assert isinstance(store, Store)
    # K2 called B: its own retry is not a duplicate of itself.
    assert gate.check(store.row("K2"), B, NY_10).ok
