"""The number's type travels from the plan into the checkpoint; older checkpoints migrate
with the type empty, and the next sync fills it in."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from campaign.config.model import load_campaign
from campaign.planning.windows import planned_rows
from campaign.store.checkpoint import RowIn, Store
from campaign.store.schema import NUMBER_TYPE_MIGRATION, migrations

T0 = 1_780_000_000.0


def test_the_planned_type_of_each_number_is_kept(tmp_path: Path) -> None:
    (tmp_path / "contacts.csv").write_text(
        "id,phone\n"
        "m,+44 7911 123456\n"  # a UK mobile
        "f,+44 20 7946 0000\n"  # a London landline
        "u,+1 415 555 0100\n"  # the US plan does not tell mobile from landline
        "x,not a number\n"
    )
    (tmp_path / "c.yaml").write_text(
        "campaign: t\nscenario_id: s\n"
        "compliance: {consent: attested}\ncalling_hours: unrestricted\n"
        "input: {path: contacts.csv, phone_column: phone, key_column: id}\n"
    )
    config = load_campaign(tmp_path / "c.yaml", env={})
    store = Store.open(tmp_path / "state.sqlite")
    try:
        store.sync_rows(planned_rows(config, []), T0)
        kinds = {row.label: row.number_type for row in store.rows()}
        facts = {fact.row_key: fact.number_type for fact in store.call_facts()}
    finally:
        store.close()
    assert kinds == {"m": "mobile", "f": "fixed_line", "u": "fixed_line_or_mobile", "x": "unknown"}
    assert facts == {}  # no attempt yet


def test_an_older_checkpoint_migrates_with_the_type_empty_until_the_next_sync(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    steps = migrations()
    before = steps[: steps.index(NUMBER_TYPE_MIGRATION)]  # the schema before the type was kept
    conn = sqlite3.connect(path, isolation_level=None)
    for statements in before:
        assert isinstance(statements, list)
        for statement in statements:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version={len(before)}")
    conn.execute(
        "INSERT INTO rows(row_key, label, line, raw_phone, e164, plan_state, timezones, "
        "progress, first_seen, last_seen) VALUES ('+447911123456', 'k', 2, '07911 123456', "
        "'+447911123456', 'callable', '[\"Europe/London\"]', 'pending', ?, ?)",
        (T0, T0),
    )
    conn.close()

    store = Store.open(path)
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(migrations())
        [row] = store.rows()
        assert row.number_type is None and row.timezones == ["Europe/London"]
        store.sync_rows(
            [
                RowIn(
                    line=2,
                    row_key="+447911123456",
                    label="k",
                    raw_phone="07911 123456",
                    e164="+447911123456",
                    plan_state="callable",
                    timezones=["Europe/London"],
                    number_type="mobile",
                )
            ],
            T0 + 60,
        )
        assert store.row("+447911123456").number_type == "mobile"
    finally:
        store.close()


def test_call_facts_carry_the_rows_timezones_country_and_type(store: Store) -> None:
    store.sync_rows(
        [
            RowIn(
                line=2,
                row_key="r",
                raw_phone="+61412345678",
                e164="+61412345678",
                plan_state="callable",
                timezones=["Australia/Sydney", "Australia/Perth"],
                region="AU",
                number_type="mobile",
            )
        ],
        T0,
    )
    store.begin_attempt("r", 1, "k1", b"{}", T0)
    store.mark_sent("k1", "call_1", "queued", T0 + 2)
    [fact] = store.call_facts("r")
    assert (fact.row_key, fact.number, fact.state, fact.call_id) == ("r", 1, "sent", "call_1")
    assert fact.started_at == T0 + 2  # when the request left, not when it was committed
    assert fact.timezones == ["Australia/Sydney", "Australia/Perth"]
    assert (fact.region, fact.number_type) == ("AU", "mobile")
    assert store.call_facts("another row") == []
