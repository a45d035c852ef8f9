"""sha256 of a file, streamed: plain Python, so research scripts can identify weights without Django."""

from __future__ import annotations

import hashlib


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
