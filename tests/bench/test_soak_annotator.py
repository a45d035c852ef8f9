"""The soak's annotator clicks each nucleus once: a random point never lands within the server's
duplicate-point distance of another (it was refused 400 and the client reloaded)."""

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from soak_load import MIN_POINT_SPACING_PX, free_spot  # noqa: E402


def test_free_spots_keep_their_distance_and_stop_when_the_field_is_full():
    rng, field, points = random.Random(3), (1000, 2000, 120, 120), []
    while (spot := free_spot(points, field, rng, tries=200)) is not None:
        assert 1002 <= spot["x"] <= 1118 and 2002 <= spot["y"] <= 2118
        assert all((spot["x"] - p["x"]) ** 2 + (spot["y"] - p["y"]) ** 2 >= MIN_POINT_SPACING_PX ** 2 for p in points)
        points.append(spot)
    # discs of radius 10 px around them do not overlap and lie in a 136 px square: at most 136² / (π 10²) = 58
    assert 10 <= len(points) <= 58
