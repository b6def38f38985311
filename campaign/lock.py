"""One run per campaign: an exclusive ``flock`` on a lock file beside the checkpoint.

The kernel drops a ``flock`` when its process dies, so a run killed with ``kill -9``
never leaves a stale lock behind. The lock is taken before the checkpoint is opened, so
a refused run has touched nothing.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from campaign.errors import LockedError


class CampaignLock:
    """Exclusive, non-blocking lock on ``<checkpoint>.lock``."""

    def __init__(self, checkpoint: Path) -> None:
        self.path = Path(str(checkpoint) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise LockedError at once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
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
