"""The tile ownership band the pipeline asks for stays within half the merge's dedupe radius."""

import pytest

from analysis.tiling import OWNERSHIP_BAND_PX
from workers.pipeline import DEFAULTS, ownership_band_px


def test_the_default_band_is_one_working_pixel():
    assert ownership_band_px(DEFAULTS) == OWNERSHIP_BAND_PX == 1.0


@pytest.mark.parametrize("dedupe_um, working_mpp", [(0.1, 0.5), (0.4, 0.25), (5.0, 10.0), (3.0, 0.5)])
def test_a_nucleus_kept_by_both_neighbours_is_within_the_dedupe_radius(dedupe_um, working_mpp):
    band_um = ownership_band_px({"dedupe_radius_um": dedupe_um, "working_mpp": working_mpp}) * working_mpp
    assert band_um <= dedupe_um / 2
