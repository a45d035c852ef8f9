"""Read an RGB field (or a region of a whole slide) for detection, refusing bad input clearly.

Plain PNG/JPEG/TIFF are read with Pillow so that grayscale and alpha images
can be recognised and refused (OpenSlide's ImageSlide silently converts every
image to RGBA).  Whole slides - every OpenSlide format and OME-TIFF - go
through slideio.slidefile.open_slide and are read at level 0.

Every problem raises ImageInputError with a one-line message meant for the
user; coordinates are (x, y) = (column, row) in level-0 pixels.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_SIDE = 16  # smaller than this holds no complete nucleus at any usual resolution
# Largest area read in one piece (~200 MB of RGB): whole slides need a region beyond it.
MAX_SIDE = 8192
MAX_PIXELS = MAX_SIDE * MAX_SIDE
GRAYSCALE_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}


class ImageInputError(ValueError):
    """An image or region that cannot be analysed; the message is shown to the user."""


@dataclass
class LoadedImage:
    rgb: np.ndarray  # (H, W, 3) uint8
    origin: tuple[int, int]  # (x0, y0) of rgb[0, 0] in the full image, level-0 px
    source_mpp: float | None  # µm/px stored in the file, None when absent or implausible
    size: tuple[int, int]  # (width, height) of the full image, level-0 px
    kind: str  # "image" (plain PNG/JPEG/TIFF) or "slide"


def parse_region(text: str | None) -> tuple[int, int, int, int] | None:
    """'x,y,w,h' (integers, level-0 px) -> tuple; None passes through."""
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 4:
            raise ValueError
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise ImageInputError(f"region must be four integers x,y,w,h (pixels), got {text!r}") from None
    return values  # type: ignore[return-value]


def check_region(region, width: int, height: int) -> tuple[int, int, int, int]:
    x, y, w, h = (int(v) for v in region)
    if w <= 0 or h <= 0:
        raise ImageInputError(f"region width and height must be positive, got {w}x{h}")
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise ImageInputError(f"region {x},{y},{w},{h} lies outside the {width}x{height} image")
    if w < MIN_SIDE or h < MIN_SIDE:
        raise ImageInputError(f"region {w}x{h} is too small: at least {MIN_SIDE}x{MIN_SIDE} pixels")
    if w * h > MAX_PIXELS:
        raise ImageInputError(f"region {w}x{h} is too large: at most {MAX_SIDE}x{MAX_SIDE} pixels at once")
    return x, y, w, h


def read_image(path: str | os.PathLike, region=None) -> LoadedImage:
    """RGB pixels of `path` (or of `region` = (x, y, w, h) in level-0 px); raises ImageInputError."""
    path = Path(path)
    if isinstance(region, str):
        region = parse_region(region)
    if not path.is_file():
        raise ImageInputError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise ImageInputError(f"{path.name} is empty (0 bytes)")
    if _is_slide(path):
        return _read_slide(path, region)
    return _read_plain(path, region)


def _is_slide(path: Path) -> bool:
    import openslide

    from slideio.slidefile import VENDOR_SUFFIXES, is_ome_tiff

    if path.suffix.lower() in VENDOR_SUFFIXES:
        return True
    try:
        fmt = openslide.OpenSlide.detect_format(str(path))
    except openslide.OpenSlideError:
        fmt = None
    return fmt is not None or is_ome_tiff(str(path))


def _check_size(width: int, height: int, name: str) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageInputError(f"{name} is {width}x{height} pixels: too small, at least {MIN_SIDE}x{MIN_SIDE}")


def _read_plain(path: Path, region) -> LoadedImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            mode, (width, height) = im.mode, im.size
            if mode in ALPHA_MODES or (mode == "P" and "transparency" in im.info):
                raise ImageInputError(
                    f"{path.name} has an alpha (transparency) channel ({mode}); save it as RGB without alpha"
                )
            if mode in GRAYSCALE_MODES:
                raise ImageInputError(
                    f"{path.name} is a single-channel (grayscale, {mode}) image; an RGB bright-field image is needed"
                )
            _check_size(width, height, path.name)
            if region is None and width * height > MAX_PIXELS:
                raise ImageInputError(
                    f"{path.name} is {width}x{height} pixels: give a region x,y,w,h of at most {MAX_SIDE}x{MAX_SIDE}"
                )
            box = check_region(region, width, height) if region is not None else (0, 0, width, height)
            x, y, w, h = box
            rgb = np.asarray(im.crop((x, y, x + w, y + h)).convert("RGB"))
    except ImageInputError:
        raise
    except UnidentifiedImageError:
        raise ImageInputError(f"{path.name} is not an image this platform can read (PNG, JPEG, TIFF, slide)") from None
    except Image.DecompressionBombError:
        raise ImageInputError(f"{path.name} is too large for a plain image; convert it to a tiled pyramidal TIFF") from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for truncated/corrupt data
        raise ImageInputError(f"{path.name}: image data is corrupt or truncated ({exc})") from None
    return LoadedImage(np.ascontiguousarray(rgb, dtype=np.uint8), (x, y), None, (width, height), "image")


def _read_slide(path: Path, region) -> LoadedImage:
    import openslide

    from slideio.slidefile import SlideError, plausible_mpp, open_slide

    try:
        slide = open_slide(path)
    except SlideError as exc:
        raise ImageInputError(f"{path.name}: {exc}") from None
    try:
        width, height = (int(v) for v in slide.dimensions)
        _check_size(width, height, path.name)
        if region is None:
            if width * height > MAX_PIXELS:
                raise ImageInputError(
                    f"{path.name} is a whole slide of {width}x{height} pixels: give a region x,y,w,h "
                    f"of at most {MAX_SIDE}x{MAX_SIDE}"
                )
            region = (0, 0, width, height)
        x, y, w, h = check_region(region, width, height)
        rgba = np.asarray(slide.read_region((x, y), 0, (w, h)), dtype=np.uint8)
        mpp = plausible_mpp(slide.properties.get(openslide.PROPERTY_NAME_MPP_X))
    except ImageInputError:
        raise
    except (openslide.OpenSlideError, OSError, ValueError) as exc:
        raise ImageInputError(f"{path.name}: slide data could not be read ({exc})") from None
    finally:
        slide.close()
    # Pixels with no data (outside scanned areas) are transparent: show them as white glass.
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return LoadedImage(rgb, (x, y), mpp, (width, height), "slide")


def check_mpp(value) -> float:
    """A usable µm/px value or ImageInputError (non-positive, NaN, inf, not a number)."""
    try:
        mpp = float(value)
    except (TypeError, ValueError):
        raise ImageInputError(f"mpp must be a number of µm per pixel, got {value!r}") from None
    if not math.isfinite(mpp) or mpp <= 0:
        raise ImageInputError(f"mpp must be a positive finite number of µm per pixel, got {value!r}")
    return mpp
