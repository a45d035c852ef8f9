"""A batch's file is written under a name of its own and replaces the batch's file only once complete:
two workers with the same pid on two machines sharing MEDIA_ROOT (containers) wrote one partial name, and
the second's os.replace found it gone (FileNotFoundError: the job failed)."""

import os
from pathlib import Path

import numpy as np
import pytest

from workers import pipeline


class Job:  # one job (pk, attempt) as two workers see it
    pk, attempt = 7, 1


def found(n):
    return pipeline.BatchDetections(xy=np.full((n, 2), n, np.float32), labels=np.ones(n, np.int8),
                                    scores=np.ones(n, np.float32), seconds=0.0)


def test_two_workers_writing_one_batch_at_once_both_succeed(media_root, monkeypatch):
    real, inner = np.savez, []

    def savez_while_the_other_writes(file, **arrays):  # host A finishes the batch while host B writes it
        real(file, **arrays)
        if not inner:
            inner.append("writing")
            inner.append(pipeline.write_batch_file(Job, 3, found(5)))

    monkeypatch.setattr(pipeline.np, "savez", savez_while_the_other_writes)
    name = pipeline.write_batch_file(Job, 3, found(4))
    assert name == inner[1]
    with np.load(media_root / name) as data:
        assert len(data["xy"]) == 4 and len(data["labels"]) == 4  # one whole file, the last one written
    assert [p.name for p in (media_root / name).parent.iterdir()] == ["batch-00003.npz"]


def test_a_failed_write_leaves_no_partial_file_and_keeps_the_earlier_one(media_root, monkeypatch):
    name = pipeline.write_batch_file(Job, 3, found(4))

    def disk_full(file, **arrays):  # half written, then the disk is full
        if isinstance(file, (str, os.PathLike)):
            Path(file).write_bytes(b"PK\x03\x04 half")
        else:
            file.write(b"PK\x03\x04 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline.np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        pipeline.write_batch_file(Job, 3, found(5))
    assert [p.name for p in (media_root / name).parent.iterdir()] == ["batch-00003.npz"]
    with np.load(media_root / name) as data:
        assert len(data["xy"]) == 4
