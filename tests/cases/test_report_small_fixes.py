"""Issue 18's small ones: the PDF keeps its "Slide" heading with the images, one message for a wrong
password, no double full stop after a time, a warning when uploading to a signed case, a favicon, and
HTML pattern attributes that Chromium (RegExp v flag) accepts."""

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.test import Client
from pypdf import PdfReader

from cases.report_pdf import build_pdf
from cases.reports import do_create_draft, do_sign, draft_fingerprint
from tests.viewer import client_for, job_with_result

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def job(personas, media_root):
    job = job_with_result(personas["case"], n=600, seed=4)
    job.slide.record_qc({"passed": True, "findings": []})
    job.slide.save()
    return job


def _page_of(pages, predicate):
    return next(i for i, text in enumerate(pages) if any(predicate(line.strip()) for line in text.splitlines()))


def test_pdf_slide_heading_stays_with_its_images(personas, job):
    """Whatever the length of the comment before it, the heading is on the page of its images."""
    path = personas["pathologist"]
    checked = set()
    for lines in range(0, 40, 2):
        comment = "\n".join(f"Comment line {i}: tumour cellularity and staining noted." for i in range(lines))
        draft = do_create_draft(personas["case"], job, path, comment=comment)
        pages = [p.extract_text() for p in PdfReader(io.BytesIO(build_pdf(draft))).pages]
        heading = _page_of(pages, lambda line: line == "Slide")
        images = _page_of(pages, lambda line: line.startswith("Detections: red"))
        assert heading == images, f"{lines} comment lines: 'Slide' on page {heading + 1}, its images on {images + 1}"
        checked.add(len(pages))
    assert max(checked) >= 2  # the sweep did push the section across a page break


def test_wrong_sign_off_password_is_said_once(personas, job):
    draft = do_create_draft(personas["case"], job, personas["pathologist"])
    client = client_for(personas["pathologist"])
    body = client.post(f"/cases/{personas['case'].pk}/report/", {"step": "sign", "password": "wrong",
                                                                 "draft_fingerprint": draft_fingerprint(draft)},
                       follow=True).content.decode()
    assert body.count("password is incorrect") == 1
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_wrong_login_password_is_said_once(personas):
    body = Client().post("/accounts/login/", {"username": "pathologist", "password": "wrong"}).content.decode()
    messages = re.findall(r"correct username and password|did not match", body)
    assert len(messages) == 1, messages


def test_signed_time_has_one_full_stop(personas, job):
    draft = do_create_draft(personas["case"], job, personas["pathologist"])
    do_sign(draft, personas["pathologist"], PASSWORD)
    for url in (f"/cases/{personas['case'].pk}/report/", f"/reports/{draft.pk}/", "/reports/"):
        body = client_for(personas["pathologist"]).get(url).content.decode()
        assert not re.search(r"\.\.\s", body), url
        assert "p.m." not in body and "a.m." not in body, url


def test_uploading_to_a_signed_case_warns(personas, job, tmp_path):
    case = personas["case"]
    client = client_for(personas["pathologist"])
    assert 'id="signed-case-warning"' not in client.get(f"/cases/{case.pk}/").content.decode()
    draft = do_create_draft(case, job, personas["pathologist"])
    do_sign(draft, personas["pathologist"], PASSWORD)
    assert 'id="signed-case-warning"' in client.get(f"/cases/{case.pk}/").content.decode()
    from analysis.synthetic_slide import write_pyramidal_tiff

    tiff = write_pyramidal_tiff(tmp_path / "late.tiff", size=(512, 512), mpp=0.5, seed=1, tile=256)
    with open(tiff.path, "rb") as fh:
        response = client.post(f"/cases/{case.pk}/", {"files": fh, "marker": "PD-L1", "mpp": ""}, follow=True)
    assert "Slide uploaded." in response.content.decode()
    assert "a slide uploaded now is not part of it" in response.content.decode()


def test_pages_have_a_local_favicon(personas):
    body = client_for(personas["pathologist"]).get("/cases/").content.decode()
    href = re.search(r'<link rel="icon" href="([^"]+)"', body).group(1)
    assert href.startswith("/static/")
    assert (REPO / "static" / href.removeprefix("/static/")).read_text().lstrip().startswith("<svg")


def test_every_pattern_attribute_compiles_with_the_v_flag():
    """Chromium compiles <input pattern> as new RegExp("^(?:" + p + ")$", "v"); an invalid one is ignored
    with a console error (the model-name field's "[a-z0-9_-]+" was)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    patterns = []
    for template in REPO.glob("*/templates/**/*.html"):
        patterns += re.findall(r'\bpattern="([^"]*)"', template.read_text())
    patterns += re.findall(r'\bpattern="([^"]*)"', (REPO / "templates" / "base.html").read_text())
    assert patterns
    script = ("const bad = []; for (const p of JSON.parse(process.argv[1])) { try { new RegExp('^(?:' + p + ')$', 'v'); }"
              " catch (e) { bad.push(p); } } console.log(JSON.stringify(bad));")
    import json

    out = subprocess.run([node, "-e", script, json.dumps(patterns)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_non_squamous_nsclc_is_an_indication_with_the_nsclc_cutoffs(personas, job):
    from cases.forms import CaseForm
    from cases.models import CutoffTable

    assert "lung_nonsquamous" in dict(CaseForm(user=personas["pathologist"]).fields["indication"].choices)
    for clone in ("22C3", "SP263"):
        squamous = CutoffTable.objects.get(assay_clone=clone, indication="lung_squamous", score_type="TPS")
        other = CutoffTable.objects.get(assay_clone=clone, indication="lung_nonsquamous", score_type="TPS")
        assert other.approved and other.source == squamous.source
        assert ([(c.lower_bound, c.label) for c in other.cutoffs.all()]
                == [(c.lower_bound, c.label) for c in squamous.cutoffs.all()])
    case = personas["case"]
    case.indication = "lung_nonsquamous"
    case.save()
    draft = do_create_draft(case, job, personas["pathologist"])
    assert not draft.scores.get("research_use") and draft.scores["tps"]["category"].startswith("TPS")
