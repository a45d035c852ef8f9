"""Every detection of a result in one compact file, queryable by viewport.

Layout (little-endian): magic b"PDL1DET\\0", uint32 header length, a JSON header, then
columns at 64-byte aligned offsets given in the header:

    cell_start  int64 (n_cells + 1)   CSR-like index: points of cell c are [start[c], start[c+1])
    x, y        float32 (N)           level-0 px
    label       int8 (N)              1 positive, 2 negative (analysis.detectors codes)
    score       uint8 (N)             round(score * 255): a display/filter value, 1/255 steps

Points are sorted by square grid cell (row-major, `cell_px` level-0 px), so the points of a
viewport are a few contiguous runs - one per cell row it crosses - read through np.memmap
without touching the rest of the file.  About 10 bytes a point: 1,000,000 cells ~ 10 MB.
Files are written to a temporary name and renamed, so a crash never leaves a half file.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"PDL1DET\0"
VERSION = 1
ALIGN = 64
SCORE_LEVELS = 255
_COLUMNS = (("x", "<f4"), ("y", "<f4"), ("label", "i1"), ("score", "u1"))


@dataclass
class Points:
    xy: np.ndarray  # (n, 2) float32 level-0 px
    labels: np.ndarray  # (n,) int8
    scores: np.ndarray  # (n,) float32, quantised to 1/255
    total: int  # points in the box before thinning to max_points
    ids: np.ndarray | None = None  # (n,) int64 storage index of each point: its stable id

    def __len__(self) -> int:
        return len(self.labels)


def write_store(path, xy, labels, scores, width: int, height: int, cell_px: int = 256,
                mpp: float | None = None, extra: dict | None = None) -> None:
    """Write detections (level-0 px) of a `width` x `height` slide; replaces `path` atomically."""
    xy = np.asarray(xy, np.float32).reshape(-1, 2)
    labels = np.asarray(labels, np.int8).reshape(-1)
    scores = np.asarray(scores, np.float32).reshape(-1)
    n = len(labels)
    if not (len(xy) == n == len(scores)):
        raise ValueError("xy, labels and scores must have the same length")
    if n and not np.isfinite(xy).all():
        raise ValueError("detection coordinates must be finite")
    if cell_px < 1 or width < 1 or height < 1:
        raise ValueError("width, height and cell_px must be positive")
    grid_w, grid_h = -(-int(width) // cell_px), -(-int(height) // cell_px)
    cell = _cell_of(xy[:, 0], xy[:, 1], cell_px, grid_w, grid_h)
    order = np.argsort(cell, kind="stable")  # stable: input order within a cell
    start = np.zeros(grid_w * grid_h + 1, np.int64)
    np.cumsum(np.bincount(cell, minlength=grid_w * grid_h), out=start[1:])
    quantised = np.rint(np.clip(np.nan_to_num(scores), 0.0, 1.0) * SCORE_LEVELS).astype(np.uint8)
    columns = {
        "cell_start": start,
        "x": xy[order, 0],
        "y": xy[order, 1],
        "label": labels[order],
        "score": quantised[order],
    }
    per_label = np.bincount(labels.astype(np.int16) + 128, minlength=256)  # int8 -> 0..255
    header = {
        "format": "pdl1-detections", "version": VERSION, "n": n,
        "width": int(width), "height": int(height), "cell_px": int(cell_px),
        "grid": [grid_w, grid_h], "mpp": mpp, "score_levels": SCORE_LEVELS,
        "counts": {str(v - 128): int(c) for v, c in enumerate(per_label) if c},
        "extra": extra or {},
    }
    _write_atomic(Path(path), header, columns)


def _cell_of(x, y, cell_px, grid_w, grid_h) -> np.ndarray:
    # Points a little outside the slide (a detection at the very edge) go to the edge cells.
    cx = np.clip(np.floor(x / cell_px), 0, grid_w - 1).astype(np.int64)
    cy = np.clip(np.floor(y / cell_px), 0, grid_h - 1).astype(np.int64)
    return cy * grid_w + cx


def _write_atomic(path: Path, header: dict, columns: dict) -> None:
    # Offsets depend on the header's length, which depends on the offsets: lay out with
    # room for the offset digits, then pad the JSON to the reserved size.
    layout, offset = {}, 0
    for name, arr in columns.items():
        layout[name] = {"dtype": arr.dtype.str, "length": int(arr.size), "offset": offset}
        offset += _aligned(arr.nbytes)
    header = dict(header, columns=layout)
    reserved = _aligned(len(MAGIC) + 4 + len(json.dumps(header)) + 16 * len(layout) + 64)
    for entry in layout.values():
        entry["offset"] += reserved
    text = json.dumps(header).encode()
    text += b" " * (reserved - len(MAGIC) - 4 - len(text))

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + struct.pack("<I", len(text)) + text)
            for name, arr in columns.items():
                _write_array(fh, arr, layout[name]["offset"])
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _write_array(fh, arr: np.ndarray, offset: int) -> None:
    fh.seek(offset)
    fh.write(np.ascontiguousarray(arr).tobytes())
    pad = _aligned(arr.nbytes) - arr.nbytes
    fh.write(b"\0" * pad)


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


class DetectionStore:
    """Read side of a detection file; columns are memory-mapped, nothing is loaded up front."""

    def __init__(self, path):
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            magic = fh.read(len(MAGIC))
            if magic != MAGIC:
                raise ValueError(f"{self.path.name} is not a detection store")
            (length,) = struct.unpack("<I", fh.read(4))
            self.header = json.loads(fh.read(length))
        if self.header.get("version") != VERSION:
            raise ValueError(f"unsupported detection store version {self.header.get('version')}")
        self.cell_px = int(self.header["cell_px"])
        self.grid_w, self.grid_h = self.header["grid"]
        self.width, self.height = self.header["width"], self.header["height"]
        self.mpp = self.header.get("mpp")
        self._columns = {name: self._map(name) for name in ("cell_start", "x", "y", "label", "score")}

    def _map(self, name: str) -> np.ndarray:
        entry = self.header["columns"][name]
        if entry["length"] == 0:  # np.memmap refuses an empty mapping
            return np.zeros(0, np.dtype(entry["dtype"]))
        return np.memmap(self.path, dtype=np.dtype(entry["dtype"]), mode="r",
                         offset=entry["offset"], shape=(entry["length"],))

    def __len__(self) -> int:
        return int(self.header["n"])

    @property
    def counts(self) -> dict[int, int]:
        return {int(k): v for k, v in self.header["counts"].items()}

    def close(self) -> None:
        self._columns = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def all(self) -> Points:
        return self._points(np.arange(len(self)), len(self))

    def query(self, x0: float, y0: float, x1: float, y1: float, max_points: int | None = None) -> Points:
        """Points with x0 <= x < x1 and y0 <= y < y1 (level-0 px), in storage order.

        With `max_points`, an evenly spaced subset of the hits (storage order is cell order,
        so the subset spreads over the box); `total` still gives the full count.
        """
        idx = self.indices(x0, y0, x1, y1)
        total = len(idx)
        if max_points is not None and total > max_points:
            idx = idx[np.linspace(0, total - 1, max(int(max_points), 0)).round().astype(np.int64)]
        return self._points(idx, total)

    def indices(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Storage indices (ascending) of the points with x0 <= x < x1 and y0 <= y < y1."""
        if len(self) == 0 or x1 <= x0 or y1 <= y0:
            return np.zeros(0, np.int64)
        c0 = int(np.clip(np.floor(x0 / self.cell_px), 0, self.grid_w - 1))
        c1 = int(np.clip(np.floor(x1 / self.cell_px), 0, self.grid_w - 1))
        r0 = int(np.clip(np.floor(y0 / self.cell_px), 0, self.grid_h - 1))
        r1 = int(np.clip(np.floor(y1 / self.cell_px), 0, self.grid_h - 1))
        start = self._columns["cell_start"]
        rows = np.arange(r0, r1 + 1)
        # One contiguous run per cell row: cells c0..c1 of a row are adjacent in the file.
        lo = np.asarray(start[rows * self.grid_w + c0])
        hi = np.asarray(start[rows * self.grid_w + c1 + 1])
        runs = [np.arange(a, b) for a, b in zip(lo, hi) if b > a]
        if not runs:
            return np.zeros(0, np.int64)
        idx = np.concatenate(runs)
        # Fancy indexing a memmap touches only the pages of these runs.
        x, y = np.asarray(self._columns["x"][idx]), np.asarray(self._columns["y"][idx])
        return idx[(x >= x0) & (x < x1) & (y >= y0) & (y < y1)]

    def take(self, idx: np.ndarray) -> Points:
        """The points at these storage indices (ids), e.g. from `indices`."""
        idx = np.asarray(idx, np.int64)
        return self._points(idx, len(idx))

    def _points(self, idx: np.ndarray, total: int) -> Points:
        cols = self._columns
        if len(idx) == 0:
            return Points(np.zeros((0, 2), np.float32), np.zeros(0, np.int8), np.zeros(0, np.float32), total,
                          np.zeros(0, np.int64))
        xy = np.stack([np.asarray(cols["x"][idx]), np.asarray(cols["y"][idx])], axis=1).astype(np.float32)
        scores = np.asarray(cols["score"][idx]).astype(np.float32) / SCORE_LEVELS
        return Points(xy, np.asarray(cols["label"][idx]).astype(np.int8), scores, total, idx)

    def density(self, grid_px: float, chunk: int = 1 << 22) -> dict[int, np.ndarray]:
        """Per label, a (rows, cols) count of points per `grid_px` square of level 0 (for heatmaps)."""
        cols_n, rows_n = int(np.ceil(self.width / grid_px)), int(np.ceil(self.height / grid_px))
        out: dict[int, np.ndarray] = {}
        for begin in range(0, len(self), chunk):  # chunks: bounded memory on a huge store
            part = slice(begin, min(begin + chunk, len(self)))
            cx = np.clip(np.floor(np.asarray(self._columns["x"][part]) / grid_px), 0, cols_n - 1).astype(np.int64)
            cy = np.clip(np.floor(np.asarray(self._columns["y"][part]) / grid_px), 0, rows_n - 1).astype(np.int64)
            labels = np.asarray(self._columns["label"][part])
            for value in np.unique(labels):
                sel = labels == value
                hist = np.bincount(cy[sel] * cols_n + cx[sel], minlength=rows_n * cols_n).reshape(rows_n, cols_n)
                out[int(value)] = out.get(int(value), 0) + hist
        return out


def open_store(path) -> DetectionStore:
    return DetectionStore(path)
