"""Hostile ground under a run: a damaged checkpoint, a full disk, a planted link, a leaked key.

Each test runs the real command (click's CliRunner, in-process sandbox) and checks what an
operator sees: the exit code, one ``Error:`` sentence and no traceback, and files left as
they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from campaign.cli import main
from campaign.store.checkpoint import Store

ROWS = [f"+1 212 555 {100 + i:04d}" for i in range(6)]
WEIRD_KEY = "sk-weird-secret-123"  # not shaped like avp_…: only its value can redact it


def _write(tmp_path: Path, *, api: str = "{base_url: sandbox}") -> Path:
    lines = ["customer_id,phone"] + [f"K{i},{p}" for i, p in enumerate(ROWS)]
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"""campaign: hard
scenario_id: scn_demo
compliance:
  consent: attested
input: {{path: contacts.csv, default_region: US, key_column: customer_id}}
retry: {{max_attempts: 1}}
limits: {{calls: 100/10s, requests: [600/min, 20000/h]}}
api: {api}
sandbox: {{time_scale: 0.005}}
state_dir: state
output_dir: out
calling_hours: unrestricted
"""
    )
    return path


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _damage(checkpoint: Path) -> None:
    """Overwrite the page at the root of the rows table, as a bad sector would."""
    conn = sqlite3.connect(f"file:{checkpoint}?mode=ro", uri=True)
    try:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'rows'").fetchone()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    with checkpoint.open("r+b") as handle:
        handle.seek((int(root[0]) - 1) * int(page_size))
        handle.write(b"\xa5" * int(page_size))


@pytest.fixture
def finished(tmp_path: Path) -> Path:
    """A campaign file whose first run is over; its checkpoint is state/hard.sqlite."""
    path = _write(tmp_path)
    first = _run("run", str(path))
    assert first.exit_code == 0, first.output
    assert not Path(str(tmp_path / "state" / "hard.sqlite") + "-wal").exists()
    return path


def test_a_damaged_checkpoint_stops_every_command_with_exit_1_and_is_left_untouched(
    tmp_path: Path, finished: Path
) -> None:
    checkpoint = tmp_path / "state" / "hard.sqlite"
    _damage(checkpoint)
    before = _digest(checkpoint)
    for command in ("run", "status", "report"):
        result = _run(command, str(finished))
        assert result.exit_code == 1, (command, result.output)
        assert f"Error: {checkpoint}: the checkpoint is damaged (" in result.output, command
        assert "restore it from a backup" in result.output
        assert "Traceback" not in result.output
        assert _digest(checkpoint) == before, f"{command} wrote to a damaged checkpoint"


def test_a_file_that_is_not_a_database_is_refused_by_name(tmp_path: Path) -> None:
    path = _write(tmp_path)
    checkpoint = tmp_path / "state" / "hard.sqlite"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"customer_id,phone\nK0,+12125550100\n" * 10)
    before = _digest(checkpoint)
    result = _run("run", str(path))
    assert result.exit_code == 1, result.output
    assert f"Error: {checkpoint}: the checkpoint is damaged (not an SQLite database" in (
        result.output
    )
    assert _digest(checkpoint) == before
    assert sorted(p.name for p in checkpoint.parent.iterdir() if p.name.startswith("hard.sq")) == [
        "hard.sqlite",
        "hard.sqlite.lock",
    ]


def test_verbose_shows_the_traceback_of_a_damaged_checkpoint(
    tmp_path: Path, finished: Path
) -> None:
    _damage(tmp_path / "state" / "hard.sqlite")
    result = _run("run", str(finished), "-v")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.output
    assert "the checkpoint is damaged" in result.output


class _FullDisk:
    """A checkpoint connection on a disk that fills up after ``commits`` transactions."""

    def __init__(self, conn: sqlite3.Connection, commits: int) -> None:
        self._conn = conn
        self._left = commits

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT":
            self._left -= 1
            if self._left < 0:
                raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.fixture
def disk_fills_mid_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    opened = Store.open.__func__  # type: ignore[attr-defined]

    def open_on_a_filling_disk(cls: type[Store], path: Path) -> Store:
        store: Store = opened(cls, path)
        # Enough commits to sync the rows and place some calls, then no more space.
        store._conn = _FullDisk(store._conn, commits=25)  # type: ignore[assignment]
        return store

    monkeypatch.setattr(Store, "open", classmethod(open_on_a_filling_disk))
    yield
    monkeypatch.undo()


def test_a_disk_that_fills_mid_run_ends_it_with_exit_1_and_a_rerun_calls_nobody_twice(
    tmp_path: Path, disk_fills_mid_run: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path)
    full = _run("run", str(path))
    assert full.exit_code == 1, full.output
    checkpoint = tmp_path / "state" / "hard.sqlite"
    assert f"Error: {checkpoint}: the checkpoint cannot be written: the disk is full" in (
        full.output
    )
    assert "free some space and rerun" in full.output
    assert "Traceback" not in full.output and "OperationalError" not in full.output
    assert "placed as call_" in full.output  # it did fill up mid-run
    monkeypatch.undo()  # space freed

    again = _run("run", str(path))
    assert again.exit_code == 0, again.output
    world = json.loads((tmp_path / "state" / "sandbox-hard.json").read_text())["world"]
    phones = [call["phone"] for call in world["calls"]]
    assert sorted(phones) == sorted(set(phones)) and len(phones) == len(ROWS)


def test_a_symlinked_lock_file_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    path = _write(tmp_path)
    precious = tmp_path / "precious.conf"
    precious.write_text("do not truncate me\n")
    (tmp_path / "state").mkdir()
    lock = tmp_path / "state" / "hard.sqlite.lock"
    lock.symlink_to(precious)
    result = _run("run", str(path))
    assert result.exit_code == 1, result.output
    assert f"Error: {lock}: the lock file is a symbolic link" in result.output
    assert precious.read_text() == "do not truncate me\n"
    assert not (tmp_path / "state" / "hard.sqlite").exists()  # refused before anything


def test_a_run_leaves_private_outputs_whatever_the_umask(tmp_path: Path) -> None:
    path = _write(tmp_path)
    old = os.umask(0o002)
    try:
        result = _run("run", str(path))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()}
    assert modes == {"results.csv": 0o600, "summary.json": 0o600, "report.html": 0o600}


@pytest.mark.parametrize("via", ["AITELIER_API_KEY", "key_env"])
@pytest.mark.parametrize("kind", ["expected", "unexpected"])
def test_the_error_line_and_the_log_never_show_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via: str, kind: str
) -> None:
    from campaign.errors import StateError
    from campaign.pipeline import report

    async def leaky(*args: object, **kwargs: object) -> None:
        text = f"request with Authorization: Bearer {WEIRD_KEY} failed"
        raise StateError(text) if kind == "expected" else RuntimeError(text)

    monkeypatch.setattr(report, "run_campaign_async", leaky)
    api = "{base_url: sandbox}" if via == "AITELIER_API_KEY" else "{base_url: sandbox, key_env: K}"
    path = _write(tmp_path, api=api)
    result = _run(
        "run", str(path), env={"AITELIER_API_KEY" if via != "key_env" else "K": WEIRD_KEY}
    )
    assert result.exit_code == 1
    assert "Error: " in result.output and "Bearer [REDACTED] failed" in result.output
    log = (tmp_path / "state" / "hard.log").read_text(encoding="utf-8")
    assert WEIRD_KEY not in result.output + log
    if kind == "unexpected":
        assert "Traceback" in log and "[REDACTED]" in log
