"""Clinical-record models: identities are unique, records are protected from deletion."""

import pytest
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from cases.choices import MppSource, ReportStatus
from cases.models import Slide
from cases.services import IngestSource, do_ingest_slide
from tests.conftest import shared_slide
from tests.factories import CaseFactory, PatientFactory, ReportFactory

pytestmark = pytest.mark.django_db


def test_mrn_and_accession_are_unique():
    patient = PatientFactory(mrn="X1")
    with pytest.raises(IntegrityError), transaction.atomic():
        PatientFactory(mrn="X1")
    CaseFactory(accession="A1", patient=patient)
    with pytest.raises(IntegrityError), transaction.atomic():
        CaseFactory(accession="A1", patient=patient)


def test_a_patient_with_cases_and_a_case_with_slides_cannot_be_deleted():
    case = CaseFactory()
    do_ingest_slide([IngestSource(name="small.svs", path=shared_slide("small.svs"))], case=case)
    with pytest.raises(ProtectedError):
        case.patient.delete()
    with pytest.raises(ProtectedError):
        case.delete()


def test_report_versions_are_unique_per_case():
    report = ReportFactory(version=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        ReportFactory(case=report.case, version=1)
    assert ReportFactory(case=report.case, version=2, status=ReportStatus.SIGNED).status == "signed"


def test_slide_mpp_state():
    slide = do_ingest_slide([IngestSource(name="boxes.tiff", path=shared_slide("boxes.tiff"))]).slide
    assert slide.needs_mpp and slide.mpp_source == MppSource.MISSING
    slide.set_mpp(0.25, 0.26)
    assert (slide.needs_mpp, slide.mpp_x, slide.mpp_y, slide.mpp_source) == (False, 0.25, 0.26, MppSource.USER)
    assert slide.path.endswith("boxes.tiff")


def test_sha256_is_not_unique():
    # The same file in two departments is two slides (cases.services dedupes only within what the
    # uploader may see), so the content hash is an index, not a key.
    slide = do_ingest_slide([IngestSource(name="small.svs", path=shared_slide("small.svs"))]).slide
    Slide.objects.create(**{f.name: getattr(slide, f.name) for f in Slide._meta.concrete_fields
                            if f.name not in ("id", "pseudo_id")})
    assert Slide.objects.filter(sha256=slide.sha256).count() == 2
