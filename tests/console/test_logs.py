"""What the nightly log looks like, on stderr and in the log file."""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaign.console.logs import error_line, setup_logging
from campaign.errors import StateError

KEY = "avp_live_8f3kQ2x9Zr_T-77"
PLAIN_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO|DEBUG|WARNING|ERROR) ")


@pytest.fixture(autouse=True)
def _reset_campaign_logger() -> Iterator[None]:
    yield
    for name in ("campaign", ""):
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if getattr(h, "_campaign_owned", False)]:
            logger.removeHandler(handler)
            handler.close()
    logging.captureWarnings(False)


def _fail_with_key() -> None:
    try:
        raise RuntimeError(f"request with Authorization: Bearer {KEY} failed")
    except RuntimeError:
        logging.getLogger("campaign.engine.submit").exception("unexpected error")


def test_plain_lines_carry_time_level_message_and_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "state" / "spring.log"
    setup_logging(log_file=log_file)
    logging.getLogger("campaign.engine.submit").info(
        "placed call", extra={"row": "cust-0042", "attempt": 1, "note": "two words"}
    )
    logging.getLogger("campaign.engine.submit").debug("waiting 12.0 s for the calls limit")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert PLAIN_LINE.match(err[0])
    assert err[0].endswith(' INFO placed call row=cust-0042 attempt=1 note="two words"')
    in_file = log_file.read_text(encoding="utf-8").splitlines()
    assert in_file[0] == err[0]
    assert in_file[1].endswith("DEBUG waiting 12.0 s for the calls limit")


def test_json_format_writes_one_object_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(log_file=tmp_path / "run.log", log_format="json")
    logging.getLogger("campaign.engine.collect").warning(
        "429 from the API", extra={"retry_after": 7.0, "row": "cust-1"}
    )
    (line,) = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "campaign.engine.collect"
    assert entry["message"] == "429 from the API"
    assert entry["retry_after"] == 7.0 and entry["row"] == "cust-1"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", entry["ts"])


def test_tracebacks_go_to_the_file_not_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "run.log"
    setup_logging(log_file=log_file)
    _fail_with_key()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ERROR unexpected error" in err
    assert "Traceback" not in err
    text = log_file.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "RuntimeError" in text


def test_verbose_shows_debug_and_tracebacks_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(log_file=None, verbose=True)
    logging.getLogger("campaign").debug("request spent", extra={"requests": 3})
    _fail_with_key()
    err = capsys.readouterr().err
    assert "DEBUG request spent requests=3" in err
    assert "Traceback (most recent call last)" in err


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_api_keys_never_reach_stderr_or_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    log_file = tmp_path / "run.log"
    custom = "sk-not-shaped-like-ours-1234"
    setup_logging(
        log_file=log_file,
        log_format="json" if log_format == "json" else "plain",
        verbose=True,
        secrets=[custom],
    )
    log = logging.getLogger("campaign.api")
    log.info("using key %s", KEY)
    log.info("header", extra={"authorization": f"Bearer {KEY}"})
    log.info("custom key %s in the environment", custom)
    log.info("sandbox key avp_test_abc123 too")
    _fail_with_key()
    written = capsys.readouterr().err + log_file.read_text(encoding="utf-8")
    assert KEY not in written and custom not in written and "avp_test_abc123" not in written
    assert written.count("[REDACTED]") >= 2 * 5
    assert "RuntimeError" in written  # the traceback itself is kept, only the key is gone


def test_calling_setup_again_does_not_duplicate_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(log_file=tmp_path / "a.log")
    setup_logging(log_file=tmp_path / "b.log")
    logging.getLogger("campaign").info("once")
    assert capsys.readouterr().err.count("once") == 1
    assert "once" in (tmp_path / "b.log").read_text(encoding="utf-8")
    assert "once" not in (tmp_path / "a.log").read_text(encoding="utf-8")


def test_the_log_file_is_private_because_row_keys_are_phone_numbers(tmp_path: Path) -> None:
    log_file = tmp_path / "state" / "spring.log"
    setup_logging(log_file=log_file)
    logging.getLogger("campaign").info("row +14155550100 placed")
    assert log_file.stat().st_mode & 0o777 == 0o600
    assert "+14155550100" in log_file.read_text(encoding="utf-8")


WEIRD_KEY = "sk-weird-secret-123"  # not shaped like avp_…: only its configured value redacts it


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_asyncio_warnings_and_library_errors_are_logged_with_the_key_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    log_file = tmp_path / "run.log"
    setup_logging(
        log_file=log_file,
        log_format="json" if log_format == "json" else "plain",
        secrets=[WEIRD_KEY],
    )

    async def leak() -> None:
        async def refused() -> None:
            raise RuntimeError(f"Bearer {WEIRD_KEY} and {KEY} refused")

        task = asyncio.get_running_loop().create_task(refused())
        await asyncio.sleep(0)  # one turn of the loop: the task runs and fails
        del task  # never awaited: asyncio logs "Task exception was never retrieved"

    asyncio.run(leak())
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"token {WEIRD_KEY} is about to expire", UserWarning, stacklevel=1)
    logging.getLogger("aiohttp.client").error("proxy said no to %s", KEY)
    stderr = capsys.readouterr().err
    written = stderr + log_file.read_text(encoding="utf-8")
    assert "Task exception was never retrieved" in written
    assert "is about to expire" in written and "proxy said no to [REDACTED]" in written
    assert WEIRD_KEY not in written and KEY not in written
    assert "RuntimeError" in log_file.read_text(encoding="utf-8")  # the traceback stays


def test_other_libraries_info_lines_stay_out_of_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "run.log"
    setup_logging(log_file=log_file)
    logging.getLogger("aiohttp.access").info("127.0.0.1 GET /v1/calls 200")
    logging.getLogger("campaign").info("ours")
    written = capsys.readouterr().err + log_file.read_text(encoding="utf-8")
    assert "GET /v1/calls" not in written
    assert written.count("ours") == 2  # once on stderr, once in the file: never twice each


class _FullDiskStream:
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        pass


def test_a_log_file_on_a_full_disk_costs_one_warning_not_a_traceback_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "run.log"
    setup_logging(log_file=log_file)
    (to_file,) = [h for h in logging.getLogger("campaign").handlers if hasattr(h, "stream")]
    to_file.stream = _FullDiskStream()  # type: ignore[attr-defined]
    for n in range(3):
        logging.getLogger("campaign").info("row %d placed", n)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err
    assert err.count(f"the log file {log_file} cannot be written") == 1
    assert "No space left on device" in err
    assert all(f"row {n} placed" in err for n in range(3))  # stderr still gets every line


def test_a_symlinked_log_file_is_refused_and_its_target_gets_no_phone_numbers(
    tmp_path: Path,
) -> None:
    target = tmp_path / "shared.txt"
    target.write_text("someone else's file\n")
    log_file = tmp_path / "run.log"
    log_file.symlink_to(target)
    with pytest.raises(StateError, match=r"run\.log: the log file is a symbolic link"):
        setup_logging(log_file=log_file)
    logging.getLogger("campaign").info("row +14155550100 placed")
    assert target.read_text() == "someone else's file\n"


def test_row_fields_are_json_keys_but_plain_lines_do_not_repeat_what_the_message_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fields = {
        "row_key": "K-7",
        "attempt": 1,
        "call_id": "call_9",
        "status": "completed",
        "outcome": None,
    }
    message = ("row %s attempt %d ended %s", "K-7", 1, "completed")
    setup_logging(log_file=None)
    logging.getLogger("campaign.engine.collect").info(*message, extra=fields)
    (plain,) = capsys.readouterr().err.splitlines()
    assert plain.endswith(" INFO row K-7 attempt 1 ended completed call_id=call_9")
    setup_logging(log_file=None, log_format="json")
    logging.getLogger("campaign.engine.collect").info(*message, extra=fields)
    entry = json.loads(capsys.readouterr().err)
    assert entry["message"] == "row K-7 attempt 1 ended completed"
    assert {k: entry[k] for k in fields} == fields


def test_the_final_error_line_is_json_with_json_logs() -> None:
    assert error_line("no such file", exit_code=2) == "Error: no such file"
    entry = json.loads(error_line("no such file", log_format="json", exit_code=2))
    assert (entry["level"], entry["message"], entry["exit_code"]) == ("ERROR", "no such file", 2)
    assert entry["logger"] == "campaign" and entry["ts"].endswith("Z")
