"""Compact duplicate detection (planning/firsts.py) and the checkpoint rows of a run."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.config.model import CampaignConfig, load_campaign
from campaign.planning.firsts import FirstLines, key_int, key_ints, number_int
from campaign.planning.plan import PlanCounts, iter_plan
from campaign.planning.staging import NewMemo, checkpoint_rows
from campaign.planning.windows import planned_stream
from campaign.store.checkpoint import _PLANNED, NULL_TEXT, planned_tuple
from campaign.store.memo_text import decode_fields


def make_config(tmp_path: Path, csv_text: str, extra: str = "") -> CampaignConfig:
    (tmp_path / "contacts.csv").write_text(csv_text, encoding="utf-8")
    (tmp_path / "c.yaml").write_text(
        "campaign: t\nscenario_id: s\n"
        "compliance: {consent: attested}\ncalling_hours: unrestricted\n"
        "input:\n  path: contacts.csv\n  default_region: GB\n" + extra
    )
    return load_campaign(tmp_path / "c.yaml", env={})


def test_every_key_gets_its_own_integer_or_none() -> None:
    keys = [
        "a", "b", "ab", "ba", "A", "abcdefgh", "abcdefg", "bcdefgh", "12345678", "1234567",
        "01234567", "123456789", "0123456789", "1234567890", "999999999999999999",
        "100000000", "1000000000000000000", "abcdefghi", "ключ", "k é", "C0000001",
        "C0000010", " x", "x ", "-1", "-", "+1",
    ]  # fmt: skip
    ints = [key_int(key) for key in keys]
    held = [(key, value) for key, value in zip(keys, ints, strict=True) if value is not None]
    assert len({value for _, value in held}) == len(held)  # no two keys share one
    assert -1 not in {value for _, value in held}  # the query that finds nothing
    # what has no exact 64-bit form stays a string
    unheld = {key for key, value in zip(keys, ints, strict=True) if value is None}
    assert unheld == {
        "0123456789", "1000000000000000000", "abcdefghi", "ключ", "k é",
    }  # fmt: skip
    assert all(-(2**63) <= value < 2**63 for _, value in held)
    assert number_int("+447911123456") == 447911123456


def test_lines_are_found_in_the_arrays_and_in_the_recent_dict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("campaign.planning.firsts._RECENT_MAX", 4)
    firsts = FirstLines()
    for line, key in enumerate([50, 10, 40, 30, 20, 60], start=2):
        assert firsts.found([key]) == [0] and key not in firsts.recent
        firsts.recent[key] = line
        firsts.settle()
    assert len(firsts.keys) == 4 and firsts.recent == {20: 6, 60: 7}  # settled at 4
    assert list(firsts.keys) == sorted(firsts.keys)
    assert firsts.found([10, 50, 30, 40, 20, 60, 0, -1, 99]) == [3, 2, 5, 4, 0, 0, 0, 0, 0]
    assert len(firsts) == 6
    # a million rows' numbers take 16 bytes each, not a dict entry's hundred
    assert firsts.keys.nbytes + firsts.lines.nbytes == 16 * len(firsts.keys)


def _messy_file(rows: int) -> str:
    """Keys of every kind the integers handle (short, long digits, long text, unicode),
    numbers and keys that come back thousands of lines later, empty keys, junk."""
    lines = ["id,phone,name"]
    for i in range(rows):
        kind = i % 4
        key = (f"k{i % 1500}", f"{10**12 + i % 1700}", f"customer-{i % 1600}@example.com",
               f"ключ{i % 900}")[kind]  # fmt: skip
        if i % 53 == 0:
            key = ""
        phone = (f"07911 {i % 2300:06d}", f"+44 7700 9{i % 2900:05d}", "n/a")[i % 3]
        lines.append(f"{key},{phone},n{i}")
    return "\n".join(lines) + "\n"


def test_duplicates_are_the_same_whether_lines_sit_in_arrays_or_in_dicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, _messy_file(6_000), "  key_column: id\n  variables: [name]\n")
    monkeypatch.setattr("campaign.planning.plan._CHUNK_ROWS", 250)

    def plan(recent_max: int) -> tuple[list[tuple[int, str, str | None, int | None]], PlanCounts]:
        monkeypatch.setattr("campaign.planning.firsts._RECENT_MAX", recent_max)
        counts = PlanCounts()
        rows = [
            (row.line, row.state, row.reason, row.duplicate_of)
            for row in iter_plan(config, counts, workers=1)
        ]
        return rows, counts

    in_dicts, dict_counts = plan(10**9)  # never settled: plain dicts, as before
    in_arrays, array_counts = plan(16)  # settled after nearly every chunk
    assert in_arrays == in_dicts and array_counts == dict_counts
    # it means something: duplicates of all kinds, found across many chunks
    duplicates = [row for row in in_dicts if row[1] == "duplicate"]
    assert len(duplicates) > 500
    assert {(line - 2) % 4 for line, _, _, _ in duplicates} == {0, 1, 2, 3}  # every key kind
    assert max(line - first for line, _, _, first in duplicates if first) > 2_000
    assert dict_counts.callable > 1_000


def test_a_run_stages_the_rows_planned_stream_gives(tmp_path: Path) -> None:
    text = (
        "id,phone,cc,name\n"
        "a1,+1 415 555 0199 ext 12,US,Ann\n"
        "a2,07911 123456,GB,Bob\n"
        "a3,07911 123456,GB,Cy\n"  # the number again: a duplicate
        "a1,07911 123457,GB,Di\n"  # the key again
        ",07911 123458,GB,Ed\n"  # no key: rejected
        "a6,n/a,GB,Flo\n"
        "a7,1-800-555-0199,US,Gus\n"
    )
    config = make_config(
        tmp_path, text, "  key_column: id\n  region_column: cc\n  variables: [name]\n"
    )
    ours, theirs = PlanCounts(), PlanCounts()
    staged = list(checkpoint_rows(config, [], ours))
    planned = list(planned_stream(config, [], theirs))
    # an empty text column comes as NULL_TEXT (the staged table stores NULL for it)
    line = _PLANNED.index("line")
    assert [
        tuple(None if at != line and value is NULL_TEXT else value for at, value in enumerate(t))
        for t in staged
    ] == [planned_tuple(row) for row in planned]
    assert any(NULL_TEXT in t for t in staged)
    assert ours == theirs
    assert [row.plan_state for row in planned] == [
        "callable", "callable", "duplicate", "duplicate", "rejected", "rejected", "callable",
    ]  # fmt: skip
    assert planned[2].duplicate_of == "3" and planned[0].extension == "12"
    assert planned[3].variables == {"name": "Di"} and planned[3].label == "a1"


class _Memo:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []
        self.noted: list[tuple[str, str | None, object]] = []

    def memo_phones(self, pairs: list[tuple[str, str | None]]) -> dict[object, object]:
        self.asked += pairs
        return {}

    def remember_encoded(self, items: list[tuple[tuple[str, str | None], str]]) -> None:
        self.noted += [(raw, region, decode_fields(text)) for (raw, region), text in items]


def test_a_new_memo_is_not_asked_but_still_told_every_number(tmp_path: Path) -> None:
    config = make_config(tmp_path, "phone\n" + "".join(f"07911 {i:06d}\n" for i in range(300)))
    plain, new = _Memo(), _Memo()
    rows = list(iter_plan(config, PlanCounts(), workers=1, memo=plain))
    assert rows == list(iter_plan(config, PlanCounts(), workers=1, memo=NewMemo(new)))
    assert len(plain.asked) == 300 and new.asked == []
    assert new.noted == plain.noted and len(new.noted) == 300


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet=st.characters(max_codepoint=127), max_size=10),
            st.text(max_size=10),
            st.from_regex(r"\A[1-9][0-9]{8,19}\Z"),
            st.sampled_from(["", "\0", "a\0", "\0a", "ключ", "C0000001", "12345678"]),
        ),
        max_size=40,
    )
)
def test_a_chunk_of_keys_gets_the_integers_each_key_gets_alone(keys: list[str]) -> None:
    ints, queries = key_ints(keys)
    assert ints == [key_int(key) for key in keys]
    assert queries.tolist() == [-1 if value is None else value for value in ints]


def test_a_chunk_of_plain_ids_takes_the_vectorised_path(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [f"C{index:07d}" for index in range(1000)] + ["", "x", "abcdefgh"]
    expected = [key_int(key) for key in keys]
    asked: list[str] = []

    def counted(key: str) -> int | None:
        asked.append(key)
        return key_int(key)

    monkeypatch.setattr("campaign.planning.firsts.key_int", counted)
    assert key_ints(keys)[0] == expected
    assert asked == []  # none of them needed the one-by-one form
    assert key_ints([*keys, "123456789012"])[0] == [*expected, -123456789012]
    assert asked == ["123456789012"]
