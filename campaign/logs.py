"""Logging for the ``campaign`` logger: stderr for people and cron, a log file for post-mortems.

Plain lines read ``2026-11-29T14:03:12Z INFO placed call row=cust-0042 attempt=1``: fields
passed as ``extra={"row": …, "attempt": …}`` are appended as ``key=value``. ``json`` writes
one object per line for log shippers. The log file gets everything, tracebacks included;
stderr gets INFO and up (DEBUG with ``verbose``). Whatever a caller logs, anything shaped
like an API key is redacted before it is written — a last line of defence, not the plan.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

LOGGER_NAME = "campaign"
REDACTED = "[REDACTED]"
_KEY_PATTERN = re.compile(r"avp_(?:live|test)_[A-Za-z0-9_\-]+")
# Attributes every LogRecord has; anything else on a record came in through ``extra``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class RedactSecrets(logging.Filter):
    """Replace API keys (and any given secret values) in a record before it is formatted."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Short values would redact ordinary words; real keys are long.
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``[REDACTED]``."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return _KEY_PATTERN.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class PlainFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <message> key=value …`` plus the traceback, if wanted."""

    def __init__(self, *, tracebacks: bool = True) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.getMessage()}"
        fields = " ".join(f"{k}={_plain_value(v)}" for k, v in _extras(record).items())
        if fields:
            line = f"{line} {fields}"
        if not self.tracebacks:
            return line
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{record.stack_info}"
        return line


def _plain_value(value: object) -> str:
    text = str(value)
    # Quote values a reader (or grep/awk) would otherwise split in two.
    return json.dumps(text, ensure_ascii=False) if not text or " " in text else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the extra fields, exc."""

    def __init__(self, *, tracebacks: bool = True) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        if self.tracebacks and record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if self.tracebacks and record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (click's runner, rich's live display)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def setup_logging(
    *,
    log_file: Path | None,
    log_format: Literal["plain", "json"] = "plain",
    verbose: bool = False,
    secrets: Iterable[str] = (),
) -> None:
    """Send the ``campaign`` logger to stderr (INFO+) and to ``log_file`` (everything)."""
    logger = logging.getLogger(LOGGER_NAME)
    # Calling this again (tests, several commands in one process) replaces, never stacks.
    for old in [h for h in logger.handlers if getattr(h, "_campaign_owned", False)]:
        logger.removeHandler(old)
        old.close()
    logger.setLevel(logging.DEBUG)
    kind = JsonFormatter if log_format == "json" else PlainFormatter
    redact = RedactSecrets(secrets)

    # People read stderr: one line per event; tracebacks go to the log file (or -v).
    to_stderr = StderrHandler(logging.DEBUG if verbose else logging.INFO)
    to_stderr.setFormatter(kind(tracebacks=verbose))
    handlers: list[logging.Handler] = [to_stderr]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        # The log names row keys, which are phone numbers by default: private like the
        # checkpoint. Created 0600 here; an existing file keeps its mode.
        os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setFormatter(kind(tracebacks=True))
        handlers.append(to_file)
    for handler in handlers:
        handler.addFilter(redact)
        handler._campaign_owned = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
