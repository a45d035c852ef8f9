"""Is a reader's pyramid one image at several resolutions?

Every reader (OpenSlide's drivers, slideio.ometiff) maps level-0 coordinates to a level by its
downsample, and the thumbnail, the tissue mask and the viewer's zoomed-out tiles read the lowest
levels. OpenSlide's generic-TIFF driver takes every page flagged "reduced resolution" as a level, so
a label page written with that flag became the lowest level: its downsample the mean of two
different ratios (5.12 from 6.8 and 3.4), and the pseudonymous thumbnail annotators see showed the
label. A level is accepted only when one factor explains both its width and its height.
"""

from __future__ import annotations

import math


def pyramid_problem(level_dimensions, level_downsamples) -> str | None:
    """Why these levels are not one image reduced by growing factors (a sentence for the user), or None.

    A level reduced by a factor f has width W0/f and height H0/f, each rounded one way or another,
    so within 1 px of both: the factors that explain its width and those that explain its height must
    overlap, and the downsample the reader uses must be one of them. Level 0 is 1, and each level is
    reduced more than the one before.
    """
    dims = [(int(w), int(h)) for w, h in level_dimensions]
    downsamples = [float(d) for d in level_downsamples]
    if len(dims) != len(downsamples) or not dims:
        return "the file's pyramid levels are inconsistent (sizes and downsamples do not match)"
    if not all(math.isfinite(d) for d in downsamples) or abs(downsamples[0] - 1.0) > 1e-6:
        return f"level 0 has downsample {downsamples[0]:g}, not 1"
    width0, height0 = dims[0]
    for level in range(1, len(dims)):
        width, height = dims[level]
        downsample = downsamples[level]
        if width < 1 or height < 1:
            return f"level {level} has no pixels ({width}×{height})"
        if not downsample > downsamples[level - 1]:
            return (f"level {level} ({width}×{height} px, downsample {downsample:g}) is not reduced more than "
                    f"level {level - 1} (downsample {downsamples[level - 1]:g}): the levels are out of order")
        low = max(width0 / (width + 1), height0 / (height + 1))
        high = min(width0 / (width - 1) if width > 1 else math.inf, height0 / (height - 1) if height > 1 else math.inf)
        if low > high:
            return (f"level {level} ({width}×{height} px) is not a reduced copy of level 0 ({width0}×{height0} px): "
                    f"its width is reduced {width0 / width:.3g}× but its height {height0 / height:.3g}×; the file "
                    "may store a label or another image as a pyramid level. Export the slide again as a "
                    "pyramidal TIFF holding only the scan's levels")
        if not low * (1 - 1e-9) <= downsample <= high * (1 + 1e-9):
            return (f"level {level} ({width}×{height} px) is declared reduced {downsample:g}×, but its size is "
                    f"level 0's reduced {width0 / width:.4g}×")
    return None
