"""Whole-file writes: a reader (or a run killed mid-write) sees the old file or the new one, never a part.

The new contents go to a temporary file with a unique name in the target's folder (so concurrent
writers, e.g. a superseded training worker and its successor, never share one), are flushed to disk,
then os.replace()d over the target. A write that fails leaves the target as it was and no temporary file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path, write, mode: int | None = None) -> Path:
    """Call write(tmp_path) to fill a fresh temporary file beside `path`, then put it in place of `path`.
    `mode`: chmod the file to this before it appears (a read-only registered copy, say)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomically(path, data: bytes, mode: int | None = None) -> Path:
    return write_atomically(path, lambda tmp: Path(tmp).write_bytes(data), mode)


def write_text_atomically(path, text: str, mode: int | None = None) -> Path:
    return write_bytes_atomically(path, text.encode("utf-8"), mode)
