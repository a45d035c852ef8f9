"""Analysis job parameters: each within a sane range, and the tile grid they ask for bounded.

A request is small but the work it asks for need not be: working_mpp=1e-6 asked for 2.65 M tiles,
tile_px=10**400 for a float the parser cannot make. Everything is checked before a job is queued.
"""

import math

from pdl1site.conf import settings

# Where positivity is read when a job does not say (per marker): analysis.compartments.
from analysis.compartments import COMPARTMENTS
from slideio.slidefile import PLAUSIBLE_MPP

# name: (lowest, highest, whole number?)
RANGES = {
    "tile_px": (64, 4096, True),
    "overlap_px": (1, 1024, True),
    "batch_size": (1, 256, True),
    "working_mpp": (0.1, 10.0, False),
    "mpp": (PLAUSIBLE_MPP[0], PLAUSIBLE_MPP[1], False),
    # Merge drops every second detection within this radius, tile seam or not: above about half a tumour
    # nucleus (5 µm) it removes real touching nuclei (50 µm took a synthetic slide from 557 cells to 75).
    "dedupe_radius_um": (0.1, 5.0, False),
}
# Pixels one batch may read and detect (tile_px² × batch_size): 32 times the default 512² × 8. A batch's
# lease is not renewed while it computes, and 4096² × 256 took about 40 min with classic on one core,
# far past the default 900 s lease (then copies run in parallel and the job fails).
MAX_BATCH_PIXELS = 64 * 2**20
ALLOWED_PARAMETERS = {*RANGES, "compartment"}


class ParameterError(ValueError):
    """A parameter out of its range; the message is for the user."""


def check_parameters(parameters: dict) -> dict:
    if not isinstance(parameters, dict):
        raise ParameterError("parameters must be an object")
    unknown = set(parameters) - ALLOWED_PARAMETERS
    if unknown:
        raise ParameterError(f"unknown parameters: {', '.join(sorted(map(str, unknown)))[:300]}")
    checked = {}
    for key, value in parameters.items():
        if key == "compartment":
            if value not in COMPARTMENTS:
                raise ParameterError("compartment must be membrane or nucleus")
            checked[key] = value
            continue
        low, high, whole = RANGES[key]
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer such as 10**400
            number = math.nan
        if not (low <= number <= high) or (whole and number != int(number)):
            kind = "a whole number" if whole else "a number"
            raise ParameterError(f"{key} must be {kind} from {low:g} to {high:g}, got {str(value)[:40]}")
        checked[key] = int(number) if whole else number
    if checked.get("overlap_px", 64) * 2 >= checked.get("tile_px", 512):
        raise ParameterError("tile_px must be more than twice overlap_px")
    pixels = checked.get("tile_px", 512) ** 2 * checked.get("batch_size", 8)
    if pixels > MAX_BATCH_PIXELS:
        raise ParameterError(f"tile_px² × batch_size is {pixels:,} pixels, more than {MAX_BATCH_PIXELS:,}: a batch "
                             "must finish within its lease (BATCH_DEADLINE_SECONDS), or it is handed to another "
                             "worker and the job fails; lower batch_size or tile_px")
    return checked


def estimated_tiles(slide, parameters: dict) -> int:
    """The tile grid's size before the tissue mask (analysis.tiling.tile_grid with the pipeline's defaults)."""
    from workers.pipeline import DEFAULTS

    params = {**DEFAULTS, **parameters}
    mpp = float(params.get("mpp") or slide.mpp_x)
    core_um = (params["tile_px"] - params["overlap_px"]) * params["working_mpp"]
    step = max(core_um / mpp, 1.0)  # level-0 px between tile origins
    return math.ceil(slide.width / step) * math.ceil(slide.height / step)


def check_tile_count(slide, parameters: dict) -> int:
    tiles = estimated_tiles(slide, parameters)
    if tiles > settings.PDL1_JOB_MAX_TILES:
        raise ParameterError(f"these parameters cut the slide into about {tiles:,} tiles, more than the limit of "
                             f"{settings.PDL1_JOB_MAX_TILES:,} (JOB_MAX_TILES): raise working_mpp or tile_px")
    return tiles
