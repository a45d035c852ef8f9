"""The viewer prints a TPS interval as every report output does: rounded outward by the server
(analysis.scoring.interval_range), never rounded to nearest in the browser, where 49.96 showed "50.0" while
the report printed 49.9 and read its near-cut-off flag from that."""

import pytest
from django.conf import settings

from analysis.scoring import interval_range
from tests.viewer import job_with_result
from viewer.scores import job_scores

pytestmark = pytest.mark.django_db


def test_job_scores_carry_the_interval_as_printed(personas, media_root):
    scores = job_scores(job_with_result(personas["case"], n=3000, seed=5))
    interval = scores["tps_interval"]
    assert interval is not None
    assert scores["tps_interval_text"] == f"{interval_range(interval['low'], interval['high'])} %"
    low, high = (float(v) for v in scores["tps_interval_text"].rstrip(" %").split("-"))
    assert low <= interval["low"] and high >= interval["high"]  # the printed interval holds the computed one


def test_the_script_prints_the_servers_text_and_rounds_nothing():
    script = (settings.BASE_DIR / "viewer" / "static" / "viewer" / "scores.js").read_text()
    assert "scores.tps_interval_text" in script
    assert "interval.low.toFixed" not in script and "interval.high.toFixed" not in script
