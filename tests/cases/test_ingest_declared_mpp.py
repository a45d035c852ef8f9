"""A resolution typed at upload or import never silently replaces the one the file declares: every µm,
mm² and the detector's working resolution follow it. CMU-1-Small-Region.svs declares 0.499 µm/px."""

import pytest
from auditlog.models import LogEntry
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from cases.choices import MppSource
from cases.models import Slide
from cases.services import IngestError, IngestSource, do_ingest_slide
from tests.conftest import shared_slide, stored_files

pytestmark = pytest.mark.django_db

CMU = "CMU-1-Small-Region.svs"


def ingest(name, **kwargs):
    return do_ingest_slide([IngestSource(name=name, path=shared_slide(name))], **kwargs)


def test_a_typed_mpp_that_contradicts_the_file_is_refused_naming_both(media_root):
    with pytest.raises(IngestError, match=r"declares 0\.499 µm/px, not the 0\.25 µm/px given") as refused:
        ingest(CMU, mpp=0.25)
    assert "slide's page" in str(refused.value)
    assert Slide.objects.count() == 0 and stored_files(media_root) == []


def test_a_typed_mpp_within_one_percent_keeps_the_files(media_root):
    slide = ingest(CMU, mpp=0.5).slide  # 0.2 % off: the same resolution, rounded
    assert (slide.mpp_x, slide.mpp_y, slide.mpp_source) == (0.499, 0.499, MppSource.SCANNER)
    # the same file and value again is the stored slide, not a refusal
    again = ingest(CMU, mpp=0.5)
    assert again.duplicate and again.slide.pk == slide.pk


def test_the_api_upload_refuses_and_the_audited_set_mpp_action_overrides(personas, media_root):
    api = APIClient()
    api.force_authenticate(personas["pathologist"])
    with open(shared_slide(CMU), "rb") as fh:
        refused = api.post("/api/slides/", {"files": [fh], "case": personas["case"].accession, "mpp": "0.25"},
                           format="multipart")
    assert refused.status_code == 400 and "0.499" in refused.json()["detail"] and "0.25" in refused.json()["detail"]
    assert Slide.objects.count() == 0
    with open(shared_slide(CMU), "rb") as fh:
        created = api.post("/api/slides/", {"files": [fh], "case": personas["case"].accession}, format="multipart")
    assert created.status_code == 201 and created.json()["mpp_source"] == MppSource.SCANNER
    pk = created.json()["id"]
    changed = api.post(f"/api/slides/{pk}/mpp/", {"mpp_x": 0.25}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["mpp_x"], changed.json()["mpp_source"]) == (0.25, MppSource.USER)
    entry = LogEntry.objects.get_for_object(Slide.objects.get(pk=pk)).filter(action=LogEntry.Action.UPDATE).get()
    assert entry.changes_dict["mpp_x"] == ["0.499", "0.25"] and entry.changes_dict["mpp_source"][1] == "user"


def test_import_slide_with_a_contradicting_mpp_is_refused(media_root):
    with pytest.raises(CommandError, match=r"declares 0\.499 µm/px, not the 0\.3 µm/px"):
        call_command("import_slide", str(shared_slide(CMU)), "--mpp", "0.3")
    assert Slide.objects.count() == 0 and stored_files(media_root) == []
