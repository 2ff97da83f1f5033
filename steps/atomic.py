"""Atomic file writes: the one way promptci writes a file that someone else may read."""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from pathlib import Path

_SEQ = itertools.count()  # with the pid, names this process's temp files (next() is atomic under the GIL)


def _open_temp(path: Path) -> tuple[int, str]:
    """Return (fd, name) of a new, exclusively created temp file (mode 0600) beside ``path``.

    The name is ``.<name>.<pid>-<n>.tmp``: cheaper than ``tempfile.mkstemp``'s random
    names, which a store writing thousands of files per shard paid for. Should that name
    exist anyway (another host's process with the same pid, on a shared volume),
    ``mkstemp`` picks one; a missing directory is created first.
    """
    tmp = str(path.parent / f".{path.name}.{os.getpid()}-{next(_SEQ)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(tmp, flags, 0o600), tmp
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(tmp, flags, 0o600), tmp
    except FileExistsError:
        return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def atomic_write(path: Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` and return it; readers see the old file or the new one.

    The temp file sits in the same directory so the final ``os.replace`` is a rename on
    one filesystem; on any failure it is removed, so nothing half-written is left behind.
    """
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
