"""One run per campaign: an exclusive ``flock`` on a lock file beside the checkpoint.

The kernel drops a ``flock`` when its process dies, so a run killed with ``kill -9``
never leaves a stale lock behind. The lock is taken before the checkpoint is opened, so
a refused run has touched nothing.

The lock file is opened with ``O_NOFOLLOW`` and must be a regular file with no other
name: a symbolic or hard link planted in the state dir could otherwise make the run
write its pid over the file it points to. Such a path is refused with ``StateError``
(exit 1: the state dir needs a person's look, it is neither a bad campaign file nor a
run in progress).
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path
from types import TracebackType

from campaign.errors import LockedError, StateError


class CampaignLock:
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

    def __enter__(self) -> CampaignLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
