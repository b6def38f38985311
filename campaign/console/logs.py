"""Logging for the ``campaign`` logger: stderr for people and cron, a log file for post-mortems.

Plain lines read ``2026-11-29T14:03:12Z INFO placed call row=cust-0042 attempt=1``: fields
passed as ``extra={"row": …, "attempt": …}`` are appended as ``key=value``, except those
the message already shows (``row K1 attempt 1 placed as call_9`` gains no ``row_key=K1``)
and empty ones. ``json`` writes one object per line for log shippers, every field its own
key: the engine passes ``row_key``, ``attempt``, ``call_id``, ``status`` and ``outcome``.
The log file gets everything, tracebacks included; stderr gets INFO and up (DEBUG with
``verbose``). Whatever a caller logs, anything shaped like an API key, and the configured
key itself, is redacted before it is written — a last line of defence, not the plan.

The redaction sits on the handlers, not on one logger, and every record written reaches
them: the ``campaign`` loggers' own, and (through a forwarder on the root logger) those of
asyncio ("Task exception was never retrieved"), of ``warnings`` and of any library, at
WARNING and up. ``redact`` gives the CLI's final ``Error:`` line the same treatment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from campaign.errors import StateError

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
            if name in _STANDARD_ATTRS or isinstance(value, int | float | bool | None):
                continue
            text = str(value)
            clean = self.redact(text)
            if isinstance(value, str) or clean != text:  # a dict of headers, say
                setattr(record, name, clean)
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
        message = record.getMessage()
        line = f"{_timestamp(record)} {record.levelname} {message}"
        fields = " ".join(
            f"{k}={_plain_value(v)}"
            for k, v in _extras(record).items()
            if v is not None and not _says(message, str(v))
        )
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


def _says(message: str, value: str) -> bool:
    """True if ``message`` already shows ``value`` as a word of its own ("row K1 …")."""
    return re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", message) is not None


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


class LogFileHandler(logging.FileHandler):
    """The log file; if it cannot be written (a full disk), one line says so, not a traceback."""

    broken = False

    def handleError(self, record: logging.LogRecord) -> None:
        if self.broken:
            return
        self.broken = True  # say it once; the run goes on, logging to stderr only
        error = sys.exc_info()[1]
        sys.stderr.write(
            f"{_timestamp(record)} WARNING the log file {self.baseFilename} cannot be "
            f"written ({error}); logging to stderr only\n"
        )

    def emit(self, record: logging.LogRecord) -> None:
        if not self.broken:
            super().emit(record)

    def close(self) -> None:
        # The last flush may meet the same full disk; the file is closed all the same.
        with contextlib.suppress(OSError):
            super().close()


class ForwardToCampaign(logging.Handler):
    """On the root logger: hands other loggers' records to the ``campaign`` handlers.

    So asyncio's, warnings' and libraries' records are redacted, formatted and filed like
    ours. The handlers are looked up at each record, so this holds no stale file; with none
    installed, it does what logging does without handlers (``lastResort``).
    """

    def emit(self, record: logging.LogRecord) -> None:
        handlers = _owned(logging.getLogger(LOGGER_NAME))
        if not handlers:  # none of ours (any more): act as if this forwarder were absent
            others = [h for h in logging.getLogger().handlers if h is not self]
            handlers = [logging.lastResort] if logging.lastResort and not others else []
        elif record.name == LOGGER_NAME or record.name.startswith(LOGGER_NAME + "."):
            return  # the campaign logger's own handlers have it already
        for handler in handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


def _owned(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, "_campaign_owned", False)]


def redact(text: str, also: Iterable[str] = ()) -> str:
    """``text`` as the log handlers would write it, with the secrets ``also`` redacted too."""
    text = RedactSecrets(also).redact(text)
    for handler in _owned(logging.getLogger(LOGGER_NAME)):
        for found in handler.filters:
            if isinstance(found, RedactSecrets):
                return found.redact(text)
    return text


def error_line(message: str, *, log_format: str = "plain", **fields: object) -> str:
    """A command's last word on a failure: ``Error: <message>``, or with ``json`` one object
    shaped like the log's lines (``level`` ERROR, ``message``, plus ``fields``)."""
    if log_format != "json":
        return f"Error: {message}"
    record = logging.makeLogRecord(
        {"name": LOGGER_NAME, "levelno": logging.ERROR, "levelname": "ERROR", "msg": message}
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return JsonFormatter(tracebacks=False).format(record)


def setup_logging(
    *,
    log_file: Path | None,
    log_format: Literal["plain", "json"] = "plain",
    verbose: bool = False,
    secrets: Iterable[str] = (),
) -> None:
    """Send the ``campaign`` logger to stderr (INFO+) and to ``log_file`` (everything).

    Other loggers (asyncio, warnings, libraries) reach the same handlers at WARNING and up.
    """
    logger = logging.getLogger(LOGGER_NAME)
    root = logging.getLogger()
    # Calling this again (tests, several commands in one process) replaces, never stacks.
    for owner in (logger, root):
        for old in _owned(owner):
            owner.removeHandler(old)
            old.close()
    logger.setLevel(logging.DEBUG)
    kind = JsonFormatter if log_format == "json" else PlainFormatter
    redactor = RedactSecrets(secrets)

    # People read stderr: one line per event; tracebacks go to the log file (or -v).
    to_stderr = StderrHandler(logging.DEBUG if verbose else logging.INFO)
    to_stderr.setFormatter(kind(tracebacks=verbose))
    handlers: list[logging.Handler] = [to_stderr]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        # The log names row keys, which are phone numbers by default: private like the
        # checkpoint. Created 0600 here; an existing file keeps its mode. A link planted
        # in its place is not followed (the run would append phone numbers to its target).
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
        try:
            os.close(os.open(log_file, flags, 0o600))
        except OSError as exc:
            what = "is a symbolic link" if log_file.is_symlink() else f"cannot be opened ({exc})"
            raise StateError(
                f"{log_file}: the log file {what}; nothing was done — remove it and rerun"
            ) from exc
        to_file = LogFileHandler(log_file, encoding="utf-8")
        to_file.setFormatter(kind(tracebacks=True))
        handlers.append(to_file)
    for handler in handlers:
        handler.addFilter(redactor)
        handler._campaign_owned = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    forward = ForwardToCampaign()
    forward._campaign_owned = True  # type: ignore[attr-defined]
    root.addHandler(forward)
    # warnings.warn() becomes a record of the "py.warnings" logger, redacted like the rest.
    logging.captureWarnings(True)
