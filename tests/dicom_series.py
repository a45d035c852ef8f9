"""Build a SYNTHETIC multi-file DICOM whole-slide series for tests.

Nothing here comes from a scanner: the pixels are four flat-coloured quadrants, written at test
time with pydicom into copies of the highdicom test file `sm_image.dcm` (a real, single-file,
50×50 uncompressed VL Whole Slide Microscopy image). Each pyramid level is its own file, as
scanners store them; all files share new Study/Series/Frame-of-Reference UIDs and each gets its own
SOP Instance UID, so OpenSlide's DICOM driver assembles them into one slide.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Quadrant colours of the synthetic pattern: top-left, top-right, bottom-left, bottom-right.
QUADRANT_COLOURS = {
    "top_left": (220, 30, 30),  # red
    "top_right": (30, 160, 40),  # green
    "bottom_left": (30, 60, 220),  # blue
    "bottom_right": (240, 210, 20),  # yellow
}
LABEL_COLOUR = (250, 250, 250)


@dataclass
class SyntheticSeries:
    folder: Path
    files: list[Path]  # the pyramid levels, level 0 first, then the associated images
    level_dimensions: list[tuple[int, int]]  # (width, height) per level
    pixel_spacing_mm: float  # level 0
    tile_size: int

    @property
    def mpp(self) -> float:
        return self.pixel_spacing_mm * 1000.0


def quadrant_pattern(width: int, height: int) -> np.ndarray:
    """An RGB image (height, width, 3) of the four coloured quadrants."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    h2, w2 = height // 2, width // 2
    image[:h2, :w2] = QUADRANT_COLOURS["top_left"]
    image[:h2, w2:] = QUADRANT_COLOURS["top_right"]
    image[h2:, :w2] = QUADRANT_COLOURS["bottom_left"]
    image[h2:, w2:] = QUADRANT_COLOURS["bottom_right"]
    return image


def _tiles(image: np.ndarray, tile: int) -> bytes:
    """Frames of a TILED_FULL image, row by row, padded to whole tiles with white."""
    height, width, _ = image.shape
    rows, cols = -(-height // tile), -(-width // tile)
    padded = np.full((rows * tile, cols * tile, 3), 255, dtype=np.uint8)
    padded[:height, :width] = image
    frames = padded.reshape(rows, tile, cols, tile, 3).swapaxes(1, 2)  # (row, col, y, x, rgb)
    return np.ascontiguousarray(frames).tobytes()


def _uid(seed: str, what: str) -> str:
    """A valid, deterministic UID: the same seed gives the same series, byte for byte."""
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=[seed, what])


def _instance(template, image: np.ndarray, tile: int | None, spacing_mm: float, image_type: str, number: int,
              seed: str):
    """A copy of the template holding `image`: tiles of `tile` pixels, or one frame when tile is None."""
    ds = deepcopy(template)
    ds.StudyInstanceUID = _uid(seed, "study")
    ds.SeriesInstanceUID = _uid(seed, "series")
    ds.FrameOfReferenceUID = _uid(seed, "frame-of-reference")
    ds.SeriesDescription = "SYNTHETIC test series (coloured quadrants), not patient data"
    uid = _uid(seed, f"instance-{number}")
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.InstanceNumber = number
    # Level 0 is the scanned image; lower levels are resampled from it.
    resampled = image_type == "VOLUME" and number > 1
    ds.ImageType = ["DERIVED" if resampled else "ORIGINAL", "PRIMARY", image_type, "RESAMPLED" if resampled else "NONE"]
    height, width, _ = image.shape
    if tile is None:
        ds.Rows, ds.Columns, ds.NumberOfFrames = height, width, 1
        frames = image.tobytes()
    else:
        ds.Rows = ds.Columns = tile
        ds.NumberOfFrames = (-(-height // tile)) * (-(-width // tile))
        frames = _tiles(image, tile)
    ds.TotalPixelMatrixColumns = width
    ds.TotalPixelMatrixRows = height
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.ImagedVolumeWidth = width * spacing_mm
    ds.ImagedVolumeHeight = height * spacing_mm
    shared = ds.SharedFunctionalGroupsSequence[0]
    shared.PixelMeasuresSequence[0].PixelSpacing = [spacing_mm, spacing_mm]
    shared.WholeSlideMicroscopyImageFrameTypeSequence[0].FrameType = list(ds.ImageType)
    ds.PixelData = frames
    return ds


def build_synthetic_series(
    folder: Path,
    *,
    size: int = 256,
    tile: int = 64,
    levels: int = 2,
    pixel_spacing_mm: float = 0.00025,
    label: bool = False,
    seed: str = "synthetic-series",
    template: Path | None = None,
) -> SyntheticSeries:
    """Write a SYNTHETIC tiled DICOM WSI pyramid (one file per level) into `folder`.

    Level n is size/2**n pixels square with PixelSpacing 2**n times level 0's. With `label`, a
    LABEL associated image is added as a further file of the series. All files share Study, Series
    and Frame-of-Reference UIDs derived from `seed` (a different seed gives a different slide).
    """
    import pydicom

    from tests.conftest import shared_slide

    template_ds = pydicom.dcmread(template or shared_slide("sm_image.dcm"))
    folder.mkdir(parents=True, exist_ok=True)
    files, dims = [], []
    for level in range(levels):
        side = size >> level
        ds = _instance(template_ds, quadrant_pattern(side, side), tile, pixel_spacing_mm * (1 << level), "VOLUME",
                       level + 1, seed)
        path = folder / f"synthetic-level{level}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
        dims.append((side, side))
    if label:
        image = np.full((32, 96, 3), LABEL_COLOUR, dtype=np.uint8)
        image[8:24, 8:88] = (0, 0, 0)
        ds = _instance(template_ds, image, None, pixel_spacing_mm * 10, "LABEL", levels + 1, seed)
        path = folder / "synthetic-label.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return SyntheticSeries(folder=folder, files=files, level_dimensions=dims, pixel_spacing_mm=pixel_spacing_mm,
                           tile_size=tile)
