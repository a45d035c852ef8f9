"""Build demo/PDL1-SP142-GPEC-demo.tif: the five real PD-L1 (SP142) IHC cores of
../shared/data/ihc/pdl1_sp142_gpec as one pyramidal tiled TIFF that OpenSlide's generic-tiff
reader opens with its pixel size.  Licence and provenance: demo/PDL1_DEMO_LICENCE.md (GPL-3.0).

    .venv/bin/python demo/build_pdl1_demo.py [SOURCE_FOLDER] [OUTPUT]

Fields 002, 003, 004, 005 and 007 hold a whole core (the other five are blank glass, checked
with analysis.tissue.fine_tissue).  Each is cropped to a fixed-width window centred on its
tissue and laid out 3 + 2 like a tissue microarray, on white (glass).  The source pixel size is
not stated; 0.65 µm/px is an estimate (a 0.6-1 mm core spans ~1,300 px) and is written into the
TIFF resolution tags.
"""

import sys
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "data" / "ihc" / "pdl1_sp142_gpec"
OUTPUT = ROOT / "demo" / "PDL1-SP142-GPEC-demo.tif"
FIELDS = ("002", "003", "004", "005", "007")
MPP = 0.65  # estimate: see the module docstring
CELL_W = 1760  # crop width per core (the cores are ~1,400-1,700 px wide, fields 2,256 x 1,440)
COLUMNS = 3
TILE = 256
LEVELS = 4
GLASS = (253, 251, 252)  # median colour of a blank field: the empty grid cell looks like glass


def _tissue_centre_x(rgb: np.ndarray) -> int:
    """Column of the tissue's centre: mean over columns whose optical density marks tissue."""
    od = -np.log10(np.maximum(rgb.astype(np.float32), 1.0) / 255.0).sum(axis=2)
    columns = np.nonzero((od > 0.1).mean(axis=0) > 0.1)[0]
    return int((columns.min() + columns.max()) // 2)


def _crop(rgb: np.ndarray) -> np.ndarray:
    x0 = min(max(_tissue_centre_x(rgb) - CELL_W // 2, 0), rgb.shape[1] - CELL_W)
    return rgb[:, x0:x0 + CELL_W]


def mosaic(source: Path) -> np.ndarray:
    cores = [_crop(np.asarray(Image.open(source / f"sp142_A12_v3_b3_{f}.jpg").convert("RGB"))) for f in FIELDS]
    h, w = cores[0].shape[:2]
    rows = -(-len(cores) // COLUMNS)
    canvas = np.empty((rows * h, COLUMNS * w, 3), np.uint8)
    canvas[:] = GLASS
    for i, core in enumerate(cores):
        r, c = divmod(i, COLUMNS)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = core
    return canvas


def write_pyramid(rgb: np.ndarray, path: Path) -> None:
    res = 1e4 / MPP  # pixels per centimetre; OpenSlide turns it into openslide.mpp-x/y
    desc = (f"Real PD-L1 (SP142) IHC, five breast TMA cores (GPEC, via amirlivne/PD-L1_Annotator, GPL-3.0); "
            f"mpp {MPP} is an estimate. See demo/PDL1_DEMO_LICENCE.md")
    level = Image.fromarray(rgb)
    with tifffile.TiffWriter(path) as tif:
        for k in range(LEVELS):
            f = 2 ** k
            if k:
                level = level.resize((rgb.shape[1] // f, rgb.shape[0] // f), Image.Resampling.LANCZOS)
            # Levels as successive reduced-resolution IFDs: the layout OpenSlide's generic-tiff reads.
            tif.write(np.asarray(level), tile=(TILE, TILE), photometric="rgb", compression="jpeg",
                      compressionargs={"level": 88}, resolution=(res / f, res / f), resolutionunit="CENTIMETER",
                      description=desc if k == 0 else None, subfiletype=0 if k == 0 else 1, metadata=None)


def main(argv: list[str]) -> None:
    source = Path(argv[1]) if len(argv) > 1 else SOURCE
    output = Path(argv[2]) if len(argv) > 2 else OUTPUT
    rgb = mosaic(source)
    write_pyramid(rgb, output)
    print(f"{output}: {rgb.shape[1]}x{rgb.shape[0]} px, {LEVELS} levels, {output.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(sys.argv)
