"""A slide's stored reader properties hold technical keys only: the DICOM patient identity (name, ID,
birth date, accession, referring physician), file names (aperio.Filename, tiff.DocumentName) and free
text descriptions stay in the file, not on the Slide row, and never reach the audit trail."""

import json

import numpy as np
import pytest
import tifffile
from auditlog.models import LogEntry

from cases.models import Slide
from cases.services import IngestSource, do_ingest_slide
from tests.conftest import shared_slide

pytestmark = pytest.mark.django_db

# Identifying values in sm_image.dcm (a public test file: a fictitious patient).
DICOM_IDENTITY = ["Test^Patient", "AA01", "17890505", "S19-1_A_1_1", "Test^Physician"]


def audit_text():
    return json.dumps([entry.changes for entry in LogEntry.objects.all()], default=str)


def ingest(path, name=None):
    return do_ingest_slide([IngestSource(name=name or path.name, path=path)]).slide


def test_dicom_identity_is_neither_stored_nor_audited(media_root):
    slide = ingest(shared_slide("sm_image.dcm"))
    stored = json.dumps(slide.properties)
    assert [value for value in DICOM_IDENTITY if value in stored] == []
    assert not {"dicom.PatientName", "dicom.PatientID", "dicom.PatientBirthDate", "dicom.AccessionNumber",
                "dicom.ReferringPhysicianName"} & set(slide.properties)
    # what the platform uses stays
    assert slide.properties["openslide.vendor"] == "dicom" and slide.properties["openslide.mpp-x"] == "0.499"
    assert "dicom.SeriesInstanceUID" in slide.properties
    assert LogEntry.objects.get_for_object(slide).filter(action=LogEntry.Action.CREATE).exists()
    assert [value for value in DICOM_IDENTITY if value in audit_text()] == []


def test_aperio_file_name_and_description_are_not_stored(media_root):
    slide = ingest(shared_slide("CMU-1-Small-Region.svs"))
    assert "aperio.Filename" not in slide.properties and "tiff.ImageDescription" not in slide.properties
    assert "openslide.comment" not in slide.properties
    assert slide.properties["aperio.AppMag"] == "20" and slide.properties["openslide.objective-power"] == "20"


def test_tiff_document_name_and_description_are_not_stored(media_root, tmp_path):
    path = tmp_path / "field.tif"
    image = np.full((512, 512, 3), 200, np.uint8)
    tifffile.imwrite(path, image, tile=(256, 256), photometric="rgb", description="Doe^Jane MRN 445566",
                     resolution=(40000, 40000), resolutionunit="CENTIMETER",
                     extratags=[(269, "s", 0, "Doe^Jane 1960-01-01", True)])  # DocumentName
    slide = ingest(path)
    assert "Doe^Jane" not in json.dumps(slide.properties) and "Doe^Jane" not in audit_text()
    assert slide.properties["openslide.vendor"] == "generic-tiff" and slide.mpp_x == 0.25


def test_the_audit_trail_never_copies_a_slides_properties(media_root):
    """A slide stored before the filter still holds the identity: deleting or changing it copies nothing."""
    slide = ingest(shared_slide("small.svs"))
    Slide.objects.filter(pk=slide.pk).update(properties={"dicom.PatientName": "Old^Patient"})
    slide.refresh_from_db()
    slide.marker = "Ki67"
    slide.save()
    slide.delete()
    assert "Old^Patient" not in audit_text()
    assert all("properties" not in (entry.changes_dict or {}) for entry in LogEntry.objects.all())
