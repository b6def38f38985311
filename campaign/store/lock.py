"""One run per campaign: an exclusive ``flock`` on a lock file beside the checkpoint.

The kernel drops a ``flock`` when its process dies, so a run killed with ``kill -9``
never leaves a stale lock behind. The lock is taken before the checkpoint is opened, so
a refused run has touched nothing.

The lock file is opened with ``O_NOFOLLOW`` and must be a regular file with no other
name: a symbolic or hard link planted in the state dir could otherwise make the run
write its pid over the file it points to. Such a path is refused with ``StateError``
(exit 1: the state dir needs a person's look, it is neither a bad campaign file nor a
run in progress).

With ``state_url`` the lock is ``PgCampaignLock``: a PostgreSQL session advisory lock held
by a connection of its own (never the pool's) for the whole run, so a second run on any
host sharing the database is refused the same way; the server drops it when the holder's
connection ends (a killed process, a dead host once TCP keepalive gives up on it).
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg

from campaign.errors import LockedError, StateError
from campaign.store.postgres import checkpoint_schema, lock_key, pg_error

# How soon the server notices a lock holder's host is gone (idle s, probe s, probes):
# about a minute and a half instead of the system's two hours.
_KEEPALIVE = (60, 10, 3)


class _Held:
    """``with lock:`` takes the lock (``acquire``) and gives it back (``release``)."""

    def acquire(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class CampaignLock(_Held):
    """Exclusive, non-blocking lock on ``<checkpoint>.lock``."""

    def __init__(self, checkpoint: Path) -> None:
        self.path = Path(str(checkpoint) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise LockedError at once (StateError if the path is unsafe)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(
                f"another run of this campaign is in progress (lock {self.path}); nothing was done"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def _open(self) -> int:
        """The lock file, opened without following a link; refused unless a plain file."""
        # No O_TRUNC: the file is emptied only once it is known to be ours and locked.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            if self.path.is_symlink():
                raise self._unsafe("is a symbolic link") from None
            if self.path.exists() and not self.path.is_file():
                raise self._unsafe("is not a regular file") from None
            raise StateError(f"{self.path}: the lock file cannot be opened ({exc})") from exc
        info = os.fstat(fd)
        problem = None
        if not stat.S_ISREG(info.st_mode):
            problem = "is not a regular file"
        elif info.st_nlink != 1:
            problem = "has other hard links"
        if problem is not None:
            os.close(fd)
            raise self._unsafe(problem)
        return fd

    def _unsafe(self, problem: str) -> StateError:
        return StateError(
            f"{self.path}: the lock file {problem}, so it was not used (writing to it "
            "could overwrite another file); nothing was done — remove it and rerun"
        )

    def release(self) -> None:
        """Release the lock (the kernel does it too if the process dies)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class PgCampaignLock(_Held):
    """One run per campaign across hosts: a session advisory lock in the state database.

    ``acquire``, ``release`` and the context manager behave as ``CampaignLock``'s. The
    lock's connection is opened here, not taken from the pool, and closed at ``release``.
    """

    def __init__(self, dsn: str, campaign: str, shown_url: str | None) -> None:
        self._dsn = dsn  # the secret URL: never shown
        self.campaign = campaign
        self.shown_url = shown_url or "(state_url)"
        self.key = lock_key(checkpoint_schema(campaign), "run")
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def __repr__(self) -> str:
        return f"PgCampaignLock(campaign={self.campaign!r}, database={self.shown_url!r})"

    @property
    def where(self) -> str:
        """The lock as messages name it."""
        return f"the lock of campaign {self.campaign!r} in the state database {self.shown_url}"

    def acquire(self) -> None:
        """Take the lock or raise LockedError at once (StateError if the database fails)."""
        idle, interval, count = _KEEPALIVE
        try:
            conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                application_name="campaign lock",
                connect_timeout=30,
                keepalives=1,
                keepalives_idle=idle,
                keepalives_interval=interval,
                keepalives_count=count,
            )
        except psycopg.Error as exc:
            raise pg_error(self.where, exc, self._dsn) from None
        try:
            # The server side too: a holder whose host vanished loses the lock in minutes.
            conn.execute(f"SET tcp_keepalives_idle = {idle}")
            conn.execute(f"SET tcp_keepalives_interval = {interval}")
            conn.execute(f"SET tcp_keepalives_count = {count}")
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except psycopg.Error as exc:
            conn.close()
            raise pg_error(self.where, exc, self._dsn) from None
        if row is None or not row[0]:
            conn.close()
            raise LockedError(
                f"another run of campaign {self.campaign!r} is in progress (lock in the "
                f"state database {self.shown_url}); nothing was done"
            )
        self._conn = conn

    def held(self) -> bool:
        """True while the lock's connection is up (the server keeps the lock that long)."""
        conn = self._conn
        if conn is None or conn.closed:
            return False
        try:
            conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def release(self) -> None:
        """Release the lock and close its connection (a lost connection released it)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except psycopg.Error:
            pass  # the connection is gone, and the lock with it
        finally:
            conn.close()
