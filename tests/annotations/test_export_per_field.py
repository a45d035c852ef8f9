"""A field several annotators labelled is ONE training sample: the consensus of the accepted sets, with the
nuclei they did not agree on as ignore points (annotations.dataset.field_label_sets). One sample per session
taught the same nucleus as positive and as negative, and one annotator's nucleus as background in the other's."""

import csv
import io
import json

import numpy as np
import pytest

from analysis import datasets
from annotations import dataset, services
from cases.choices import Role
from tests.annotations import session_of
from tests.factories import make_user
from tests.workers.conftest import synthetic_slide, synthetic_slide_file  # noqa: F401  fixtures

pytestmark = pytest.mark.django_db

REGION = (100, 100, 256, 256)  # on the 0.5 µm/px synthetic slide: the consensus radius (4 µm) is 8 px
A = [[150, 150, "positive"], [200, 200, "positive"], [300, 300, "negative"]]
B = [[151, 150, "negative"], [201, 200, "positive"]]


def accept(session, annotator, reviewer, points):
    services.do_save_points(session, annotator, session.version, points)
    services.do_submit(session, annotator, session.version)
    services.do_accept(session, reviewer, version=session.version)


def two_annotators(personas, slide):
    second = make_user(Role.ANNOTATOR, [personas["case"].department], username="annot2")
    project = services.do_create_project(personas["pathologist"], "pair", "lung_squamous", "PD-L1", [],
                                         [personas["annotator"], second])
    field = services.do_create_field(project, slide, *REGION)
    return project, field, second


def rows(path):
    return [(float(r["x"]), float(r["y"]), r["label"]) for r in csv.DictReader(io.StringIO(path.read_text()))]


def test_two_accepted_sessions_of_one_field_export_one_consensus_entry(personas, synthetic_slide, tmp_path):  # noqa: F811
    project, field, second = two_annotators(personas, synthetic_slide)
    a, b = session_of(field, personas["annotator"]), session_of(field, second)
    accept(a, personas["annotator"], personas["pathologist"], A)
    accept(b, second, personas["pathologist"], B)
    out = tmp_path / "ds"
    manifest = dataset.do_export_dataset(dataset.accepted_sessions(project), out, mpp=0.5)
    (entry,) = manifest["fields"]
    assert entry["id"] == f"field-{field.pk}-consensus" and entry["image"] == f"images/field-{field.pk}.png"
    # who and which saved version made the labels
    assert entry["sessions"] == [{"session": b.pk, "annotator": "annot2", "version": b.version},
                                 {"session": a.pk, "annotator": "annotator", "version": a.version}]
    assert entry["session"] is None and entry["annotator"] is None
    assert entry["consensus"] == {"radius_um": 4.0, "min_votes": 2, "annotators": 2, "uncertain": 1, "unconfirmed": 1}
    # agreed: the nucleus both found as positive; the tied one and the one only A found are ignore points
    assert rows(out / entry["points"]) == [(100.5, 100.0, "positive")]
    assert rows(out / entry["ignore_points"]) == [(50.5, 50.0, "ignore"), (200.0, 200.0, "ignore")]
    assert entry["counts"] == {"positive": 1, "ignore": 2}
    (sample,) = datasets.folder_samples(out)  # the reader keeps the disputed nuclei apart: uncertain
    assert sample.labels.tolist() == [datasets.POSITIVE] and len(sample.ignore_xy) == 0
    np.testing.assert_allclose(sample.uncertain_xy, [[50.5, 50.0], [200.0, 200.0]])


def test_db_samples_give_one_sample_per_field_with_the_disputed_nuclei_uncertain(personas, synthetic_slide):  # noqa: F811
    """Uncertain, not ignore_xy: training would take ignore_xy as labelled non-tumour nuclei (background)."""
    _, field, second = two_annotators(personas, synthetic_slide)
    accept(session_of(field, personas["annotator"]), personas["annotator"], personas["pathologist"], A)
    accept(session_of(field, second), second, personas["pathologist"], B)
    (sample,) = dataset.db_samples("PD-L1")
    assert sample.name == f"field-{field.pk}-consensus"
    np.testing.assert_allclose(sample.xy, [[100.5, 100.0]])
    assert sample.labels.tolist() == [datasets.POSITIVE]
    np.testing.assert_allclose(sample.uncertain_xy, [[50.5, 50.0], [200.0, 200.0]])
    assert len(sample.ignore_xy) == 0
    np.testing.assert_allclose(datasets.metric_ignore_xy(sample), [[50.5, 50.0], [200.0, 200.0]])
    assert [s["annotator"] for s in sample.meta["sessions"]] == ["annot2", "annotator"]


def test_one_accepted_session_of_a_field_exports_its_own_points(personas, synthetic_slide, tmp_path):  # noqa: F811
    """The other annotator's session is not accepted: the field is that one session, as before."""
    project, field, second = two_annotators(personas, synthetic_slide)
    a = session_of(field, personas["annotator"])
    accept(a, personas["annotator"], personas["pathologist"], A)
    services.do_save_points(session_of(field, second), second, 0, B)
    manifest = dataset.do_export_dataset(dataset.accepted_sessions(project), tmp_path / "ds", mpp=0.5)
    (entry,) = manifest["fields"]
    assert entry["id"] == f"field-{field.pk}-session-{a.pk}" and entry["session"] == a.pk
    assert entry["consensus"] is None and "ignore_points" not in entry
    assert entry["sessions"] == [{"session": a.pk, "annotator": "annotator", "version": a.version}]
    assert [r[2] for r in rows(tmp_path / "ds" / entry["points"])] == ["positive", "positive", "negative"]
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["fields"] == manifest["fields"]
