"""What a report states in words agrees with what it states as data: no TPS number for an inadequate
specimen (the structured value is withheld), a legend that names the colours drawn, and drafts changed
only through their services."""

import io
import json

import pytest
from pypdf import PdfReader

from cases.models import ReportError
from cases.report_pdf import build_pdf
from cases.reports import do_amend, do_create_draft, do_sign, fhir_bundle
from tests.factories import CaseFactory
from tests.viewer import client_for, job_with_result

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


def pdf_text(report) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(build_pdf(report, report.job))).pages)


def test_an_inadequate_specimen_has_no_tps_number_in_any_output(personas, media_root):
    job = job_with_result(personas["case"], n=40, seed=3)  # fewer viable tumour cells than scoring needs
    draft = do_create_draft(personas["case"], job, personas["pathologist"])
    assert not draft.scores["adequacy"]["adequate"] and draft.scores["tps"]["value"] is not None
    stated = f"{draft.scores['tps']['value']}%"
    bundle = fhir_bundle(draft)
    conclusion = bundle["entry"][0]["resource"]["conclusion"]
    assert conclusion.startswith("TPS not evaluable") and stated not in conclusion
    assert "valueQuantity" not in bundle["entry"][1]["resource"]
    text = pdf_text(draft)
    assert f"{draft.scores['tps']['value']:.2f}%" not in text and "Counts:" in text
    response = client_for(personas["pathologist"]).get(f"/cases/{personas['case'].pk}/report/")
    assert response.status_code == 200 and f">{stated}<" not in response.content.decode()


def test_the_pdf_legend_names_the_colours_drawn(personas, media_root):
    job = job_with_result(personas["case"], n=400, seed=4)
    text = pdf_text(do_create_draft(personas["case"], job, personas["pathologist"]))
    assert "red PD-L1-positive, yellow negative" in text and "(yellow to red)" in text and "blue" not in text


def test_an_amendment_draft_of_another_case_or_without_a_reason_is_not_signed(personas, media_root):
    job = job_with_result(personas["case"], n=400, seed=5)
    signed = do_sign(do_create_draft(personas["case"], job, personas["pathologist"]), personas["pathologist"], PASSWORD)
    amendment = do_amend(signed, personas["pathologist"], "recount after review")
    other = CaseFactory(patient__department=personas["case"].department)
    from cases.models import Report

    Report.objects.filter(pk=amendment.pk).update(case=other)  # as the admin's form could do before
    amendment.refresh_from_db()
    with pytest.raises(ReportError, match="another case"):
        amendment.sign(personas["pathologist"], PASSWORD)
    Report.objects.filter(pk=amendment.pk).update(case=personas["case"], amendment_reason="  ")
    amendment.refresh_from_db()
    with pytest.raises(ReportError, match="needs a reason"):
        amendment.sign(personas["pathologist"], PASSWORD)
    signed.refresh_from_db()
    assert signed.status == "signed"


def test_the_admin_changes_no_report_field(personas, media_root):
    from django.contrib.admin.sites import site
    from django.test import RequestFactory

    from cases.models import Report

    admin = site._registry[Report]
    request = RequestFactory().get("/admin/")
    request.user = personas["admin"]
    draft = do_create_draft(personas["case"], job_with_result(personas["case"], n=400, seed=6), personas["pathologist"])
    form_class = admin.get_form(request, draft)
    assert not form_class.base_fields  # nothing editable, drafts included
    assert not admin.has_add_permission(request)
    assert json.loads(json.dumps(draft.scores))  # the draft itself is unchanged and readable


def test_an_approved_cut_off_table_starts_at_zero_and_bounds_are_percentages(personas):
    from django.test import Client

    from cases.models import CutoffTable
    from tests.factories import make_user

    client = Client()
    client.force_login(make_user(None, username="root", is_staff=True, is_superuser=True))

    def post(rows, approved=True):
        data = {"assay_clone": "SP263", "indication": "other", "score_type": "TPS", "source": "lab SOP",
                "notes": "", "cutoffs-TOTAL_FORMS": str(len(rows)), "cutoffs-INITIAL_FORMS": "0",
                "cutoffs-MIN_NUM_FORMS": "0", "cutoffs-MAX_NUM_FORMS": "1000"}
        if approved:
            data["approved"] = "on"
        for n, (lower, label) in enumerate(rows):
            data[f"cutoffs-{n}-lower_bound"], data[f"cutoffs-{n}-label"] = str(lower), label
        return client.post("/admin/cases/cutofftable/add/", data)

    before = CutoffTable.objects.count()
    assert b"needs a row with lower bound 0" in post([(1, "1-49%"), (50, ">= 50%")]).content
    assert b"percentage from 0 to 100" in post([(0, "< 1%"), (150, "impossible")]).content
    assert CutoffTable.objects.count() == before
    assert post([(0, "< 1%"), (1, "1-49%"), (50, ">= 50%")]).status_code == 302
    assert CutoffTable.objects.count() == before + 1
    row = CutoffTable.objects.latest("pk").cutoffs.get(lower_bound=0)  # alone, a row is only listed
    assert client.post(f"/admin/cases/cutoff/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/admin/cases/cutoff/{row.pk}/change/", {"table": row.table_id, "lower_bound": "0.5",
                                                                 "label": "x"}).status_code == 403
    row.refresh_from_db()
    assert row.lower_bound == 0


def test_a_fhir_amendment_names_the_version_it_replaces(personas, media_root):
    """Each version had its own id and identifier and nothing pointed back: a receiver kept v1 "final"
    beside v2. Every version now shares the accession identifier and an amendment names the one it replaces."""
    job = job_with_result(personas["case"], n=400, seed=7)
    signed = do_sign(do_create_draft(personas["case"], job, personas["pathologist"]), personas["pathologist"], PASSWORD)
    amendment = do_sign(do_amend(signed, personas["pathologist"], "recount"), personas["pathologist"], PASSWORD)
    accession = personas["case"].accession
    first, second = (fhir_bundle(r)["entry"][0]["resource"] for r in (signed, amendment))
    assert {"system": first["identifier"][1]["system"], "value": accession, "use": "secondary"} in second["identifier"]
    assert first["identifier"][1]["value"] == accession and second["identifier"][0]["value"] == f"{accession}-v2"
    replaces = next(e for e in second["extension"] if e["url"] == "urn:pdl1:replaces")
    assert replaces["valueIdentifier"]["value"] == f"{accession}-v1" and second["status"] == "amended"



def test_a_value_without_a_category_in_the_cases_table_is_not_signed(personas, media_root):
    from cases.models import CutoffTable

    table, _ = CutoffTable.objects.update_or_create(
        assay_clone=personas["case"].assay_clone, indication=personas["case"].indication, score_type="TPS",
        defaults={"approved": True, "source": "edited without its 0 row"})
    table.cutoffs.all().delete()
    table.cutoffs.create(lower_bound=99.5, label=">= 99.5%")  # no category for anything below
    draft = do_create_draft(personas["case"], job_with_result(personas["case"], n=400, seed=8), personas["pathologist"])
    assert draft.scores["tps"]["category"] is None
    with pytest.raises(ReportError, match="below the lowest cut-off"):
        do_sign(draft, personas["pathologist"], PASSWORD)
