"""Open detection stores of done jobs, and their per-class density grids, kept in small LRU caches
(a store is read-only once its job is done; its mtime is in the key in case a file is rewritten)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from django.conf import settings

from analysis.choices import JobStatus
from analysis.detection_store import DetectionStore, open_store
from cases.results import NoResult, ResultUnreadable


class _StoreCache:
    def __init__(self, size: int = 16):
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, path: Path) -> DetectionStore:
        key = (str(path), os.stat(path).st_mtime_ns)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        store = open_store(path)
        with self._lock:
            self._entries[key] = store
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return store


_stores = _StoreCache()
_densities: OrderedDict = OrderedDict()
_densities_lock = threading.Lock()


def job_store(job) -> DetectionStore:
    if job.status != JobStatus.DONE or not job.result_file:
        raise NoResult(f"job {job.pk} is {job.status}: it has no detections to show yet")
    path = Path(settings.MEDIA_ROOT) / job.result_file
    try:
        return _stores.get(path)
    except (OSError, ValueError) as exc:
        raise ResultUnreadable(f"the detections of job {job.pk} cannot be read ({exc}): restore the file "
                               f"{job.result_file} from the backup") from None


def job_mpp(job, store) -> float | None:
    """The pixel size (µm/px) every µm or mm² of a job's result is read at: the one its analysis ran at
    (recorded in its store), else the slide's.  One definition, so region areas, hot-spot fields, the
    interval's blocks, the carry radius and the export agree even after the slide's mpp is changed."""
    mpp = getattr(store, "mpp", None) or job.slide.mpp_x
    return float(mpp) if mpp else None


def base_density(store, grid_px: float) -> dict[int, np.ndarray]:
    key = (str(store.path), os.stat(store.path).st_mtime_ns, float(grid_px))
    with _densities_lock:
        if key in _densities:
            _densities.move_to_end(key)
            return _densities[key]
    found = store.density(grid_px)
    with _densities_lock:
        _densities[key] = found
        while len(_densities) > 32:
            _densities.popitem(last=False)
    return found
