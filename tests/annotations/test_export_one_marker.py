"""A training dataset holds one marker's annotations: export_annotations needs --project or --marker (without
either it wrote every project of every marker into one folder), do_export_dataset refuses sessions of two
markers, and the manifest names the marker."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from analysis import datasets
from annotations import dataset, services
from tests.annotations import session_of
from tests.annotations.test_marker_match import twin_slide
from tests.workers.conftest import synthetic_slide, synthetic_slide_file  # noqa: F401  fixtures

pytestmark = pytest.mark.django_db


def two_markers(personas, slide):
    """An accepted session in a PD-L1 project and one in a Ki-67 project (on a Ki-67 slide)."""
    projects = {}
    for marker, on, region in (("PD-L1", slide, (100, 100, 64, 64)),
                               ("Ki67", twin_slide(slide, "Ki67"), (400, 400, 64, 64))):
        project = services.do_create_project(personas["pathologist"], marker.lower(), "lung_squamous", marker, [],
                                             [personas["annotator"]])
        s = session_of(services.do_create_field(project, on, *region), personas["annotator"])
        services.do_save_points(s, personas["annotator"], 0, [[region[0] + 10, region[1] + 10, "positive"]])
        services.do_submit(s, personas["annotator"])
        services.do_accept(s, personas["pathologist"])
        projects[marker] = project
    return projects


def test_the_command_needs_a_project_or_a_marker(personas, synthetic_slide, tmp_path):  # noqa: F811
    projects = two_markers(personas, synthetic_slide)
    with pytest.raises(CommandError, match="one of the arguments --project --marker is required"):
        call_command("export_annotations", str(tmp_path / "all"))
    assert not (tmp_path / "all").exists()
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("export_annotations", str(tmp_path / "x"), "--marker", "CD8")
    out = StringIO()
    call_command("export_annotations", str(tmp_path / "ki"), "--marker", "Ki67", stdout=out)
    assert "1 Ki67 field(s) written" in out.getvalue()
    manifest = json.loads((tmp_path / "ki" / "manifest.json").read_text())
    assert manifest["marker"] == "Ki67" and [e["project"] for e in manifest["fields"]] == ["ki67"]
    assert manifest["name"] == "Ki67 annotations"
    call_command("export_annotations", str(tmp_path / "pd"), "--project", str(projects["PD-L1"].pk), stdout=out)
    assert json.loads((tmp_path / "pd" / "manifest.json").read_text())["marker"] == "PD-L1"
    assert len(datasets.folder_samples(tmp_path / "pd")) == 1


def test_the_export_refuses_sessions_of_two_markers(personas, synthetic_slide, tmp_path):  # noqa: F811
    two_markers(personas, synthetic_slide)
    with pytest.raises(services.AnnotationError, match=r"projects of 2 markers \(Ki67, PD-L1\)"):
        dataset.do_export_dataset(dataset.accepted_sessions(), tmp_path / "mixed", mpp=0.5)
    assert not (tmp_path / "mixed").exists()
