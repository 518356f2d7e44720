"""A run folder has one writer: :class:`RunLock` holds an exclusive lock on ``RUN/.lock``.

The lock is ``flock`` on an open file, so the kernel releases it when its process ends, however
it ends (``kill -9`` included): a lock left by a dead run is simply taken over. The file holds
the holder's PID, which a refused second writer names.
"""

from __future__ import annotations

import os
from pathlib import Path

from vqkit.errors import VQKitError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; a PID file is the fallback below
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunLock", "RunLocked"]

LOCK_NAME = ".lock"


class RunLocked(VQKitError):
    """Another process is writing this run folder."""


class RunLock:
    """Exclusive lock on a run folder, held while training writes it.

    Use as a context manager; the folder must exist.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunLocked(f"{self.path.parent}: another vqkit process (PID {holder}) is "
                            f"writing this run; wait for it to finish or use another --out") \
                from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the file releases the lock
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
