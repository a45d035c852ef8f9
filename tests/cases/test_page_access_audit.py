"""Pages that show patient data log it as ACCESS entries, as the API does (README, "Access control")."""

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client

from cases.models import Patient, Report, Slide
from cases.services import IngestSource, do_ingest_slide
from tests.conftest import shared_slide
from tests.factories import CaseFactory, ReportFactory

pytestmark = pytest.mark.django_db


def accesses(model, actor):
    return LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model),
                                   action=LogEntry.Action.ACCESS, actor=actor)


def web(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def slide(personas):
    return do_ingest_slide([IngestSource(name="small.svs", path=shared_slide("small.svs"))],
                           case=personas["case"]).slide


def test_the_thumbnail_page_logs_the_slide_shown(personas, slide):
    pathologist = personas["pathologist"]
    assert web(pathologist).get(f"/slides/{slide.pk}/thumbnail.png").status_code == 200
    entry = accesses(Slide, pathologist).get()
    assert entry.object_pk == str(slide.pk)


def test_the_pseudonymous_thumbnail_logs_nothing(personas, slide):
    # The annotator's view carries no identity: not an access to patient data (as the API's).
    annotator = personas["annotator"]
    assert web(annotator).get(f"/annotate/{slide.pseudo_id}/thumbnail.png").status_code == 200
    assert not LogEntry.objects.filter(action=LogEntry.Action.ACCESS, actor=annotator).exists()


SCORES = {"tps": {"value": 12.5, "category": "TPS 1-49%", "status": "computed", "near_cutoff": False, "uncertainty": ""},
          "adequacy": {"adequate": True}, "research_use": False}


def test_the_report_list_logs_each_patient_named_once(personas):
    patient = personas["case"].patient
    second_case = CaseFactory(patient=patient)
    reports = [ReportFactory(case=case, scores=SCORES) for case in (personas["case"], second_case)]
    pathologist = personas["pathologist"]
    body = web(pathologist).get("/reports/").content.decode()
    assert body.count(patient.family_name) == 2  # two rows naming the one patient
    patient_entries = accesses(Patient, pathologist)
    assert list(patient_entries.values_list("object_pk", flat=True)) == [str(patient.pk)]
    assert set(accesses(Report, pathologist).values_list("object_pk", flat=True)) == {str(r.pk) for r in reports}
