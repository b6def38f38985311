"""Batch files, their keys and their pacing: what the platform will read and dial."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.config.limit import Limit
from campaign.engine.batches.plan import (
    MAX_FILE_ROWS,
    BatchMember,
    Candidate,
    batch_idempotency_key,
    content_hash,
    may_start_batch,
    plan_next_batch,
    recorded_rows,
    render_csv,
    seconds_per_call,
    split_batches,
    variable_columns,
    written_ref,
)
from campaign.sandbox.uploads import parse_batch_csv

T0 = 1_780_000_000.0


def members(count: int, **variables: str) -> list[BatchMember]:
    return [BatchMember(f"cust-{i:04d}", f"+1415555{i:04d}", dict(variables)) for i in range(count)]


def test_file_has_phone_row_ref_then_variables_and_is_byte_identical_on_rerun() -> None:
    rows = [
        BatchMember("c-1", "+14155550100", {"first_name": "Ana", "plan": "gold"}),
        BatchMember("c-2", "+14155550101", {"first_name": "Zoë, Jr.", "plan": ""}),
    ]
    first = render_csv(rows, ["first_name", "plan"])
    assert first == render_csv(list(rows), ["first_name", "plan"])
    assert first.decode("utf-8").splitlines()[0] == "phone,row_ref,first_name,plan"
    assert first == (
        b"phone,row_ref,first_name,plan\r\n"
        b"+14155550100,c-1,Ana,gold\r\n"
        b'+14155550101,c-2,"Zo\xc3\xab, Jr.",\r\n'
    )


def test_server_reads_back_every_row_ref_phone_and_variable() -> None:
    awkward = {
        "first_name": 'He said "hi",\nthen left',
        "phone": "+44 20 7946 0958",  # a variable called phone must not become the number
        "row_ref": "crm-7",
        "note": "  ünïcödé \r tab\t",
    }
    rows = [BatchMember('key,with "quotes"', "+14155550100", awkward)]
    parsed = parse_batch_csv(render_csv(rows, list(awkward)))
    assert len(parsed) == 1
    assert parsed[0].status != "invalid", parsed[0].error
    assert parsed[0].phone == "+14155550100"
    assert parsed[0].row_ref == 'key,with "quotes"'
    assert parsed[0].variables == {
        "first_name": 'He said "hi",\nthen left',
        "var_phone": "+44 20 7946 0958",
        "var_row_ref": "crm-7",
        "note": "  ünïcödé \r tab\t",
    }


def test_reserved_variable_names_are_renamed_without_clashing() -> None:
    assert variable_columns(["phone", "var_phone", "row_ref", "plan", "plan"]) == {
        "phone": "var_var_phone",
        "var_phone": "var_phone",
        "row_ref": "var_row_ref",
        "plan": "plan",
    }


def test_nul_in_a_variable_does_not_make_the_whole_file_unreadable() -> None:
    rows = [BatchMember("c-1", "+14155550100", {"note": "a\x00b"})]
    parsed = parse_batch_csv(render_csv(rows, ["note"]))
    assert parsed[0].variables == {"note": "ab"}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s),
            st.text(max_size=20).filter(lambda s: "\x00" not in s),
        ),
        min_size=1,
        max_size=8,
        unique_by=lambda pair: pair[0],
    )
)
def test_any_keys_and_values_survive_the_round_trip(pairs: list[tuple[str, str]]) -> None:
    rows = [
        BatchMember(key, f"+1415555{i:04d}", {"v": value}) for i, (key, value) in enumerate(pairs)
    ]
    parsed = parse_batch_csv(render_csv(rows, ["v"]))
    assert [(r.row_ref, r.variables.get("v")) for r in parsed] == pairs


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8, unique=True))
def test_the_recorded_file_says_what_the_server_echoes_for_any_key(keys: list[str]) -> None:
    # NUL included: the file cannot hold it, so the row_ref the server echoes is the cell
    # as written, and that is what rows are matched against.
    rows = [BatchMember(key, f"+1415555{i:04d}") for i, key in enumerate(keys)]
    body = render_csv(rows, [])
    recorded = recorded_rows(body)
    parsed = parse_batch_csv(body)
    assert [(r.row_ref, r.phone) for r in parsed] == [(r.row_ref, r.phone) for r in recorded]
    assert [r.row_ref for r in recorded] == [written_ref(key) for key in keys]
    assert [r.position for r in recorded] == list(range(len(keys)))


def test_idempotency_key_depends_on_campaign_sequence_and_content_only() -> None:
    body = render_csv(members(3), [])
    key = batch_idempotency_key("spring", 1, body)
    assert key == batch_idempotency_key("spring", 1, bytes(body))
    assert key != batch_idempotency_key("spring", 2, body)
    assert key != batch_idempotency_key("autumn", 1, body)
    assert key != batch_idempotency_key("spring", 1, render_csv(members(4), []))
    assert key.startswith("cmpb-") and 1 <= len(key) <= 255 and key.isascii()
    assert content_hash(body) == content_hash(bytes(body))


def test_split_respects_max_rows_and_keeps_order() -> None:
    rows = members(1_203)
    chunks = split_batches(rows, [], max_rows=500)
    assert [len(c) for c in chunks] == [500, 500, 203]
    assert [m for c in chunks for m in c] == rows


def test_split_never_exceeds_the_contract_file_limits() -> None:
    rows = members(25, blob="x" * 1_000)
    chunks = split_batches(rows, ["blob"], max_rows=MAX_FILE_ROWS, max_bytes=5_000)
    assert all(len(render_csv(c, ["blob"])) <= 5_000 for c in chunks)
    assert sum(len(c) for c in chunks) == 25
    assert len(split_batches(members(10_001), [], max_rows=50_000)[0]) == MAX_FILE_ROWS


def test_a_row_larger_than_a_file_is_refused_not_truncated() -> None:
    with pytest.raises(ValueError, match="larger than a batch file"):
        split_batches(members(1, blob="x" * 100), ["blob"], max_rows=10, max_bytes=80)


def test_dial_spacing_is_the_tightest_outbound_limit() -> None:
    assert seconds_per_call([Limit(5, 60)]) == 12.0
    assert seconds_per_call([Limit(5, 60), Limit(100, 3600)]) == 36.0


def test_soonest_closing_rows_go_first_and_rows_that_cannot_fit_wait() -> None:
    # Spacing 12 s: a batch of n rows needs 12·n s; the window of "east" closes in 10 min.
    east = [Candidate(f"east-{i}", T0 - 1, T0 + 600, line=i) for i in range(100)]
    west = [Candidate(f"west-{i}", T0 - 1, T0 + 4 * 3600, line=100 + i) for i in range(10)]
    batch = plan_next_batch(
        west + east, now=T0, spacing=12.0, queued_rows=0, max_rows=500, margin_s=120
    )
    assert batch is not None
    # 480 s of window left for east rows after the margin: 41 fit (dialed at 0, 12 … 480 s).
    assert batch.row_keys[:41] == [f"east-{i}" for i in range(41)]
    assert batch.row_keys[41:] == [f"west-{i}" for i in range(10)]
    assert batch.not_before is None
    assert batch.last_dial_at == T0 + 50 * 12


def test_rows_queued_ahead_push_new_rows_later() -> None:
    rows = [Candidate(f"r-{i}", T0 - 1, T0 + 600) for i in range(50)]
    batch = plan_next_batch(rows, now=T0, spacing=12.0, queued_rows=20, max_rows=500)
    assert batch is not None
    # The 20 queued rows take 240 s; 600 - 120 margin - 240 leaves room for 21 more.
    assert len(batch.row_keys) == 21 and batch.first_dial_at == T0 + 240


def test_nothing_fits_means_no_batch() -> None:
    rows = [Candidate("late", T0 - 3600, T0 + 60)]
    assert plan_next_batch(rows, now=T0, spacing=12.0, queued_rows=0, max_rows=10) is None


def test_a_window_opening_soon_is_held_with_not_before() -> None:
    rows = [Candidate(f"r-{i}", T0 + 900, T0 + 9_000) for i in range(3)]
    rows.append(Candidate("later", T0 + 7_200, T0 + 20_000))
    assert plan_next_batch(rows, now=T0, spacing=12.0, queued_rows=0, max_rows=10) is None
    batch = plan_next_batch(
        rows, now=T0, spacing=12.0, queued_rows=0, max_rows=10, hold_horizon_s=1_800
    )
    assert batch is not None
    assert batch.row_keys == ["r-0", "r-1", "r-2"] and batch.not_before == T0 + 900


def test_max_rows_caps_a_batch() -> None:
    rows = [Candidate(f"r-{i:03d}", T0 - 1, None) for i in range(30)]
    batch = plan_next_batch(rows, now=T0, spacing=1.0, queued_rows=0, max_rows=7)
    assert batch is not None and len(batch.row_keys) == 7


def test_no_new_batch_while_a_long_queue_remains() -> None:
    assert may_start_batch(T0, queued_rows=10, spacing=12.0, lead_s=300)
    assert not may_start_batch(T0, queued_rows=100, spacing=12.0, lead_s=300)


def _read(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_each_split_file_is_a_standalone_valid_csv() -> None:
    rows = members(30, plan="gold")
    for chunk in split_batches(rows, ["plan"], max_rows=8):
        records = _read(render_csv(chunk, ["plan"]))
        assert records[0] == ["phone", "row_ref", "plan"]
        assert [r[1] for r in records[1:]] == [m.row_key for m in chunk]
