import csv
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import pytest

from campaign.config.model import CampaignConfig, load_campaign
from campaign.errors import ConfigError
from campaign.inputs.ingest import CsvFormat, Record, read_records
from campaign.planning import plan as plan_module
from campaign.planning.plan import PlanCounts, PlannedRow, iter_plan, plan_rows
from campaign.store.memo_text import decode_fields

CASES = Path(__file__).parents[1] / "cases"
CASE_FILES = sorted(CASES.glob("*.yaml"))


def expected_rows(case: Path) -> list[dict[str, str]]:
    with case.with_suffix(".expected.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("case", CASE_FILES, ids=[case.stem for case in CASE_FILES])
def test_corpus_every_row_has_its_expected_outcome(case: Path) -> None:
    result = plan_rows(load_campaign(case, env={}))
    expected = expected_rows(case)
    assert [row.line for row in result.rows] == [int(row["line"]) for row in expected]
    for planned, want in zip(result.rows, expected, strict=True):
        where = f"{case.stem} line {planned.line}"
        assert planned.state == want["state"], where
        assert (planned.e164 or "") == want["e164"], where
        assert want["reason"] in (planned.reason or ""), where
        if want["variable"]:
            name, _, value = want["variable"].partition("=")
            assert planned.variables[name] == value, where


def test_corpus_covers_what_the_issue_asks_for() -> None:
    encodings = {case.stem for case in CASE_FILES}
    assert {"us_nanp_utf8", "eu_semicolon_bom", "excel_unicode_utf16", "cp1252_pipe"} <= encodings
    countries: set[str] = set()
    for case in CASE_FILES:
        countries |= set(plan_rows(load_campaign(case, env={})).counts.by_country)
    assert len(countries) >= 10


def make_config(tmp_path: Path, csv_text: str, extra: str = "") -> CampaignConfig:
    (tmp_path / "contacts.csv").write_text(csv_text, encoding="utf-8")
    (tmp_path / "c.yaml").write_text(
        "campaign: t\nscenario_id: s\n"
        "compliance: {consent: attested}\ncalling_hours: unrestricted\n"
        "input:\n  path: contacts.csv\n  default_region: GB\n" + extra
    )
    return load_campaign(tmp_path / "c.yaml", env={})


def test_opted_out_numbers_are_suppressed(tmp_path: Path) -> None:
    config = make_config(tmp_path, "phone\n07911 123456\n07911 123457\n")
    result = plan_rows(config, opted_out=["+447911123456"])
    assert [row.state for row in result.rows] == ["suppressed", "callable"]
    assert result.rows[0].reason == "opted out (state dir opt-out list)"
    assert [row.row_key for row in result.callable_rows] == ["+447911123457"]


def test_unknown_column_names_the_key_and_lists_the_header(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, "Phone,First Name\n07911 123456,Al\n", "  variables: [frist name]\n"
    )
    with pytest.raises(ConfigError) as caught:
        plan_rows(config)
    assert str(caught.value) == (
        f"{tmp_path / 'c.yaml'}: input.variables[0]: column 'frist name' is not in "
        "contacts.csv; did you mean 'first name'? (columns: phone, first name)"
    )
    assert caught.value.exit_code == 2


def test_key_column_dedupes_by_key_and_still_by_number(tmp_path: Path) -> None:
    text = "id,phone\na,07911 123456\na,07911 123457\nb,07911 123456\nc,07911 123458\n"
    config = make_config(tmp_path, text, "  key_column: ID\n")
    rows = plan_rows(config).rows
    assert [(row.row_key, row.state, row.duplicate_of) for row in rows] == [
        ("a", "callable", None),
        ("a", "duplicate", 2),
        ("b", "duplicate", 2),  # another key, but the same person: never called twice
        ("c", "callable", None),
    ]


def test_an_unknown_country_says_what_is_accepted_and_names_the_column_as_the_file_does(
    tmp_path: Path,
) -> None:
    config = make_config(
        tmp_path,
        "phone,Country\n0612345678,FR\n0612345679,Frankreich\n",
        "  region_column: country\n",
    )
    rows = plan_rows(config).rows
    assert rows[0].e164 == "+33612345678"
    assert rows[1].state == "rejected"
    assert rows[1].reason == (
        "unknown country 'Frankreich' in column 'Country' (write an ISO 3166 code such as GB "
        "or GBR, or an English country name such as United Kingdom)"
    )


def test_country_names_in_the_region_column_are_read_not_rejected(tmp_path: Path) -> None:
    text = (
        "phone,Country\n"
        "07911 123456,United Kingdom\n"
        "0151 12345678,Germany\n"
        "(212) 736-5000,USA\n"
        "06 12 34 56 78,fra\n"
        "0412 345 678,Australia\n"
    )
    rows = plan_rows(make_config(tmp_path, text, "  region_column: country\n")).rows
    assert [(row.state, row.e164) for row in rows] == [
        ("callable", "+447911123456"),
        ("callable", "+4915112345678"),
        ("callable", "+12127365000"),
        ("callable", "+33612345678"),
        ("callable", "+61412345678"),
    ]


@pytest.mark.parametrize("number", ["+44 7911 123456", "0044 7911 123456", "011 44 7911 123456"])
def test_a_number_with_its_own_country_code_is_never_rejected_by_the_region_column(
    tmp_path: Path, number: str
) -> None:
    text = f"phone,Country\n{number},Grossbritannien\n06 12 34 56 78,Grossbritannien\n"
    rows = plan_rows(make_config(tmp_path, text, "  region_column: country\n")).rows
    assert (rows[0].state, rows[0].e164, rows[0].reason) == ("callable", "+447911123456", None)
    assert rows[1].state == "rejected"  # a national number still needs a country
    assert rows[1].reason is not None and "unknown country 'Grossbritannien'" in rows[1].reason


def test_big_inputs_use_the_worker_pool_and_keep_input_order(tmp_path: Path) -> None:
    lines = ["phone"] + [f"07911 {i % 6000:06d}" for i in range(9000)]
    config = make_config(tmp_path, "\n".join(lines) + "\n")
    counts = PlanCounts()
    rows = list(iter_plan(config, counts, workers=2))
    assert [row.line for row in rows] == list(range(2, 9002))
    assert counts.callable == 6000 and counts.duplicates == 3000
    assert rows[6000].duplicate_of == 2
    assert sum(counts.by_country.values()) == 6000


def test_pool_and_in_process_plans_are_identical_row_for_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A messy big file: national and international forms, repeats, junk, unknown regions,
    # empty keys, a stray delimiter and a ragged row — the pool must change nothing.
    lines = ["id,phone,cc,name"]
    for i in range(15000):
        cc = ("GB", "FR", "US", "Frankreich", "")[i % 5]
        phone = (f"07911 {i % 9000:06d}", f"+44 7700 9{i % 7000:05d}", "n/a")[i % 3]
        key = "" if i % 41 == 0 else f"k{i % 12000}"
        lines.append(f"{key},{phone},{cc},n{i}")
    lines[100] += ",extra"
    lines[200] = "k200,07911 000200"
    extra = "  key_column: id\n  region_column: cc\n  variables: [name]\n"
    config = make_config(tmp_path, "\n".join(lines) + "\n", extra)
    pools: list[object] = []
    methods: list[str] = []

    class CountedPool(ProcessPoolExecutor):
        def __init__(self, max_workers: int, mp_context: BaseContext) -> None:
            super().__init__(max_workers=max_workers, mp_context=mp_context)
            methods.append(mp_context.get_start_method())
            pools.append(self)

    monkeypatch.setattr("campaign.planning.plan.ProcessPoolExecutor", CountedPool)

    def plan(workers: int) -> tuple[list[PlannedRow], PlanCounts]:
        counts = PlanCounts()
        return list(iter_plan(config, counts, workers=workers)), counts

    (pooled, pooled_counts), (inline, inline_counts) = plan(2), plan(1)
    assert len(pools) == 1  # the first run used the pool, the second did not
    assert methods == ["forkserver"]  # never a fork of this process: small workers
    assert pooled == inline and pooled_counts == inline_counts
    assert {row.state for row in pooled} == {"callable", "rejected", "duplicate"}
    assert pooled[99].reason == "5 fields but the header has 4 (a stray delimiter?)"
    assert pooled[199].variables == {"name": ""}


def test_an_extension_is_kept_and_noted_not_silently_dropped(tmp_path: Path) -> None:
    text = "phone,cc\n415.555.0199 ext 12,US\n07911 123456,GB\n"
    result = plan_rows(make_config(tmp_path, text, "  region_column: cc\n"))
    first = result.rows[0]
    assert (first.state, first.e164, first.extension) == ("callable", "+14155550199", "12")
    assert first.note == "extension 12 not dialled: the call reaches the main number only"
    assert result.rows[1].extension is None
    assert result.counts.extensions == 1


def test_a_process_running_other_threads_never_forks_its_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A host (campaign.run_async in a web app, a scheduler) runs threads of its own: the
    # workers come from a fresh forkserver, and still plan exactly as the in-process path.
    lines = ["phone,cc"] + [f"07911 {100000 + i:06d},GB" for i in range(5_000)]
    config = make_config(tmp_path, "\n".join(lines) + "\n", "  region_column: cc\n")
    methods: list[str] = []

    class WatchedPool(ProcessPoolExecutor):
        def __init__(self, max_workers: int, mp_context: BaseContext) -> None:
            super().__init__(max_workers=max_workers, mp_context=mp_context)
            methods.append(mp_context.get_start_method())

    monkeypatch.setattr("campaign.planning.plan.ProcessPoolExecutor", WatchedPool)
    release = threading.Event()
    host = threading.Thread(target=release.wait)
    host.start()
    try:
        pooled = list(iter_plan(config, PlanCounts(), workers=2))
    finally:
        release.set()
        host.join()
    assert methods == ["forkserver"]
    assert pooled == list(iter_plan(config, PlanCounts(), workers=1))


def test_the_plan_streams_holding_a_few_chunks_of_records_at_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = ["id,phone"] + [f"k{i},+1 212 555 {i % 10_000:04d}" for i in range(2_000)]
    config = make_config(tmp_path, "\n".join(lines) + "\n", "  key_column: id\n")
    monkeypatch.setattr("campaign.planning.plan._CHUNK_ROWS", 100)
    monkeypatch.setattr("campaign.planning.plan._CHUNKS_AHEAD", 2)
    read = [0]

    def counted(path: Path, fmt: CsvFormat) -> Iterator[Record]:
        for record in read_records(path, fmt):
            read[0] += 1
            yield record

    monkeypatch.setattr("campaign.planning.plan.read_records", counted)
    ahead = []
    for planned, row in enumerate(iter_plan(config, PlanCounts(), workers=1), start=1):
        ahead.append(read[0] - planned)
        assert row.state == "callable"
    assert len(ahead) == 2_000
    # the chunk being planned and two read ahead: never the whole file
    assert max(ahead) == 3 * 100 - 1


def test_the_counts_a_plan_keeps_as_it_goes_are_those_of_its_rows() -> None:
    # iter_plan tallies each chunk's rows and counts the tally: over every case the counts
    # must be what the rows themselves say, field by field.
    for case in CASE_FILES:
        counts = PlanCounts()
        rows = list(iter_plan(load_campaign(case, env={}), counts, workers=1))
        callable_rows = [row for row in rows if row.state == "callable"]
        of_state = {
            state: Counter(row.reason or state for row in rows if row.state == state)
            for state in ("rejected", "suppressed")
        }
        assert counts.rows_read == len(rows), case.stem
        assert counts.callable == len(callable_rows), case.stem
        assert counts.rejected == of_state["rejected"], case.stem
        assert counts.suppressed == of_state["suppressed"], case.stem
        assert counts.duplicates == sum(1 for row in rows if row.state == "duplicate")
        assert counts.by_country == Counter(row.region or "??" for row in callable_rows)
        assert counts.by_window == Counter((r.timezones, r.us_state) for r in callable_rows)
        assert counts.by_timezone.total() == len(callable_rows)
        assert counts.extensions == sum(1 for row in callable_rows if row.extension)
        assert counts.by_address_zone == Counter(
            row.address_zone for row in callable_rows if row.address_zone
        )
        one_by_one = PlanCounts()
        for row in rows:
            one_by_one.add(row)
        assert counts == one_by_one, case.stem


def test_counts_cover_the_rows_handed_out_when_the_plan_is_left_early(tmp_path: Path) -> None:
    lines = ["phone"] + [f"07911 {i:06d}" for i in range(25)]
    config = make_config(tmp_path, "\n".join(lines) + "\n")
    counts = PlanCounts()
    planned = iter_plan(config, counts, workers=1)
    taken = [next(planned) for _ in range(10)]
    planned.close()
    assert counts.rows_read == 10 and counts.callable == len(taken)


def test_numbers_the_pool_normalised_are_given_to_the_memo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    phones = [f"07911 {i:06d}" for i in range(9000)]
    config = make_config(tmp_path, "\n".join(["phone", *phones]) + "\n")
    started: list[int] = []
    start_pool = plan_module._start_pool

    def counted(workers: int) -> Executor:
        started.append(workers)
        return start_pool(workers)

    monkeypatch.setattr(plan_module, "_start_pool", counted)

    class Memo:
        def __init__(self) -> None:
            self.noted: list[tuple[str, str | None, Any]] = []

        def memo_phones(self, pairs: Sequence[tuple[str, str | None]]) -> dict[Any, Any]:
            return {}

        def remember_encoded(self, items: Iterable[tuple[tuple[str, str | None], str]]) -> None:
            self.noted.extend((raw, region, decode_fields(text)) for (raw, region), text in items)

    memo = Memo()
    rows = list(iter_plan(config, PlanCounts(), workers=2, memo=memo))
    assert started == [2]  # the pool normalised them
    assert sorted(raw for raw, _, _ in memo.noted) == sorted(phones)
    e164_of = {raw: fields[0] for raw, _, fields in memo.noted}
    assert all(e164_of[row.raw_phone] == row.e164 for row in rows)
