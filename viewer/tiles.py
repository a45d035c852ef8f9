"""DeepZoom tiles of stored slides: a bounded, thread-safe cache of open slides and generators.

Each entry is keyed by (path, mtime_ns), so a replaced file is reopened. An evicted entry is only
dropped from the cache, never closed here: a request still rendering from it keeps its reference,
and the handle closes when the last reference goes (OpenSlide closes on garbage collection).
OpenSlide handles are thread-safe; other readers (OmeTiffSlide through tifffile/zarr, whose file
position is shared) are serialised by a per-slide lock.

Rendered JPEG tiles are kept in a second bounded cache (by bytes): a viewer asks for the same
low-zoom tiles again and again, and a repeat costs no decoding.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass, field

from pdl1site.conf import settings

log = logging.getLogger(__name__)

TILE_SIZE = 254
OVERLAP = 1
# The DeepZoom image is the whole level-0 plane, not the scanner's bounds rectangle: detections, regions
# and drawn outlines are in level-0 pixels, and with the bounds (Leica SCN, Ventana BIF, Philips, Zeiss)
# the image would start at bounds-x / bounds-y and every overlay would be shifted by them.
LIMIT_BOUNDS = False
TILE_FORMAT = "jpeg"


class TileError(Exception):
    """A slide or tile that cannot be served; the message is shown to the user."""


class TileNotFound(TileError):
    """No such level or tile address."""


@dataclass
class OpenedSlide:
    slide: object  # OpenSlide-like handle
    generator: object  # openslide.deepzoom.DeepZoomGenerator
    lock: object = field(default_factory=nullcontext)

    @property
    def level_count(self) -> int:
        return self.generator.level_count


def _cache_size() -> int:
    return max(1, settings.PDL1_VIEWER_SLIDE_CACHE_SIZE)


def _tile_cache_bytes() -> int:
    return max(0, settings.PDL1_VIEWER_TILE_CACHE_BYTES)


def _jpeg_quality() -> int:
    return int(settings.PDL1_VIEWER_JPEG_QUALITY)


def open_generator(path: str) -> OpenedSlide:
    """Open a slide file and its DeepZoomGenerator; raises TileError."""
    from openslide.deepzoom import DeepZoomGenerator

    from slideio.slidefile import SlideError, open_slide

    try:
        slide = open_slide(path)
    except SlideError as exc:
        raise TileError(f"the slide cannot be displayed: {exc}") from None
    except OSError as exc:
        raise TileError(f"the slide file cannot be read: {exc.strerror or exc}") from None
    try:
        # DeepZoomGenerator only uses dimensions, level_dimensions, level_downsamples,
        # properties, get_best_level_for_downsample and read_region: OmeTiffSlide has them all.
        generator = DeepZoomGenerator(slide, tile_size=TILE_SIZE, overlap=OVERLAP, limit_bounds=LIMIT_BOUNDS)
    except Exception as exc:  # a reader without OpenSlide's interface, or broken bounds metadata
        slide.close()
        raise TileError(f"the slide cannot be displayed as DeepZoom tiles: {exc}") from None
    lock = threading.Lock() if _needs_lock(slide) else nullcontext()
    return OpenedSlide(slide, generator, lock)


def _needs_lock(slide) -> bool:
    # openslide.OpenSlide is thread-safe; ImageSlide wraps one PIL image, which is not.
    import openslide

    return not isinstance(slide, openslide.OpenSlide)


class SlideCache:
    """LRU of OpenedSlide by (path, mtime_ns); size from settings.PDL1_VIEWER_SLIDE_CACHE_SIZE (default 16)."""

    def __init__(self, opener=open_generator):
        self._entries: OrderedDict[tuple[str, int], OpenedSlide] = OrderedDict()
        self._lock = threading.Lock()
        self._opening: dict[tuple[str, int], threading.Lock] = {}
        self._opener = opener

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def evict(self, path: str) -> None:
        """Forget every open handle of `path`: the next request opens the file again (OpenSlide keeps a
        handle that met a read error in that error for good)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == str(path)]:
                del self._entries[key]

    def get(self, path: str) -> OpenedSlide:
        path = str(path)
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            raise TileError("the slide file is missing from storage") from None
        key = (path, mtime)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
            opening = self._opening.setdefault(key, threading.Lock())
        # Open outside the cache lock (opening a large slide takes a while); one opener per key.
        with opening:
            with self._lock:
                entry = self._entries.get(key)
            if entry is None:
                entry = self._opener(path)
            with self._lock:
                self._opening.pop(key, None)
                for stale in [k for k in self._entries if k[0] == path and k != key]:
                    del self._entries[stale]  # the file was replaced
                self._entries[key] = entry
                self._entries.move_to_end(key)
                while len(self._entries) > _cache_size():
                    self._entries.popitem(last=False)
            return entry


class TileBytesCache:
    """LRU of encoded tiles, bounded by total bytes (settings.PDL1_VIEWER_TILE_CACHE_BYTES)."""

    def __init__(self):
        self._entries: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key) -> bytes | None:
        with self._lock:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
            return data

    def put(self, key, data: bytes) -> None:
        limit = _tile_cache_bytes()
        if len(data) > limit:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._entries[key] = data
            self._bytes += len(data)
            while self._bytes > limit:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


slide_cache = SlideCache()
tile_cache = TileBytesCache()


def dzi_xml(path: str) -> str:
    return slide_cache.get(path).generator.get_dzi(TILE_FORMAT)


def level_count(path: str) -> int:
    return slide_cache.get(path).level_count


def cached_tile(path: str, level: int, col: int, row: int) -> bytes | None:
    """The tile's JPEG bytes when already rendered (viewer.fastpath); None when not in the cache."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return None
    return tile_cache.get((path, mtime, level, col, row))


def tile_jpeg(path: str, level: int, col: int, row: int) -> bytes:
    """The JPEG bytes of one DeepZoom tile; raises TileNotFound for an address outside the pyramid."""
    opened = slide_cache.get(path)
    generator = opened.generator
    if not 0 <= level < generator.level_count:
        raise TileNotFound(f"no level {level}: the pyramid has levels 0 to {generator.level_count - 1}")
    cols, rows = generator.level_tiles[level]
    if not (0 <= col < cols and 0 <= row < rows):
        raise TileNotFound(f"no tile {col}_{row} at level {level}: it has {cols}x{rows} tiles")
    key = (path, os.stat(path).st_mtime_ns, level, col, row)
    data = tile_cache.get(key)
    if data is not None:
        return data
    try:
        with opened.lock:
            tile = generator.get_tile(level, (col, row))
    except Exception as exc:  # noqa: BLE001  OpenSlideError, OSError, a decoder's own error on damaged data
        slide_cache.evict(path)  # not a handle stuck in its error for every other tile and user
        log.warning("tile %s %s_%s of %s cannot be read: %s", level, col, row, path, exc)
        raise TileError(f"this part of the slide cannot be read (level {level}, tile {col}_{row}): the file may be "
                        "damaged there") from None
    buffer = io.BytesIO()
    tile.convert("RGB").save(buffer, "JPEG", quality=_jpeg_quality())
    data = buffer.getvalue()
    tile_cache.put(key, data)
    return data


def max_zoom_ratio(mpp_x: float | None) -> float:
    """How far past level 0 the viewer may zoom: to ~0.125 µm/px on screen (about 80x), 2x without mpp."""
    if not mpp_x:
        return 2.0
    return max(1.0, round(float(mpp_x) / 0.125, 2))
