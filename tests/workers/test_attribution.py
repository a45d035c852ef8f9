"""Every job records exactly what ran, and only vetted detectors run in clinical jobs (issue 14, items 2
and 4): the shipped starter is a registered ModelVersion with its sha256, research until promoted (the
research CLI runs it); classic jobs keep their parameters; the report and FHIR method state it; web and API
take only classic or a model released for clinical use (a server path is refused, the same way whether the
file exists or not)."""

import pytest
from django.test import Client
from pypdf import PdfReader
from rest_framework.test import APIClient

import pdl1site
from analysis import registry
from analysis.choices import JobStatus, ModelStatus
from analysis.models import AnalysisJob, ModelVersion
from cases.report_pdf import build_pdf
from cases.reports import do_create_draft, fhir_bundle
from tests.analysis.test_registry import PDL1_HELD_OUT, promoted, tiny_checkpoint
from tests.viewer import SlideFactory, job_with_result
from workers import queue
from workers.services import JobError, do_start_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def starter():
    if not registry.STARTER_FILE.is_file():
        pytest.skip("starter model not shipped")
    return ModelVersion.objects.get(name=registry.STARTER_NAME)


@pytest.fixture
def clinical_model(media_root):
    """A model measured on PD-L1 held-out fields, evaluated against classic and promoted."""
    version = registry.register_checkpoint(tiny_checkpoint(media_root / "clinical.pt", seed=3), "clinical-v1",
                                           metrics={"synthetic": {"fields": 1}}, training_data=PDL1_HELD_OUT)
    version.set_status(ModelStatus.CLINICAL)
    version.save()
    return promoted(version)


@pytest.fixture
def research_model(media_root):
    return registry.register_checkpoint(tiny_checkpoint(media_root / "research.pt"), "research-v1",
                                        training_data=PDL1_HELD_OUT)


def started(slide, **kwargs) -> AnalysisJob:
    """Create the job as the web and API do, without running it."""
    with queue.collecting():
        job = do_start_job(slide, **kwargs)
    job.refresh_from_db()
    return job


def api_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- item 2: what ran ----------------------------------------------------------------------------

def test_default_detector_job_records_classic_with_its_cut(personas, clinical_model):
    job = started(SlideFactory(case=personas["case"]))
    assert job.detector == "classic" and job.model_version is None
    assert job.provenance["kind"] == "classic" and job.provenance["parameters"]["dab_threshold"] == 0.1  # PD-L1
    nuclear = started(SlideFactory(case=personas["case"]), parameters={"compartment": "nucleus"}, research=True)
    assert nuclear.provenance["parameters"]["dab_threshold"] == "adaptive"
    assert job.software_version == pdl1site.__version__


def test_a_job_with_the_starter_records_it_and_its_sha256(personas, starter):
    """Research until promoted: the research CLI runs it, a clinical job does not."""
    slide = SlideFactory(case=personas["case"])
    with pytest.raises(JobError, match="unknown detector"):
        started(slide, detector=starter.name)
    job = started(slide, detector=starter.name, research=True)
    assert job.detector == starter.name and job.model_version == starter
    assert job.provenance["kind"] == "model" and job.provenance["status"] == ModelStatus.RESEARCH
    assert job.provenance["sha256"] == starter.sha256 == registry.sha256_file(registry.STARTER_FILE)
    assert job.software_version == pdl1site.__version__
    assert "research models never feed signed reports" in job.research_use_reason()


def test_a_job_with_a_clinical_model_records_it_and_its_sha256(personas, clinical_model):
    job = started(SlideFactory(case=personas["case"]), detector=clinical_model.name)
    assert job.detector == clinical_model.name and job.model_version == clinical_model
    assert job.provenance["kind"] == "model" and job.provenance["status"] == ModelStatus.CLINICAL
    assert job.provenance["sha256"] == clinical_model.sha256 == registry.sha256_file(clinical_model.path())
    assert job.research_use_reason() == ""


def test_classic_job_records_its_parameters(personas):
    job = started(SlideFactory(case=personas["case"]), detector="classic", parameters={"compartment": "nucleus"},
                  research=True)
    assert job.model_version is None and job.provenance["kind"] == "classic"
    params = job.provenance["parameters"]
    assert params["compartment"] == "nucleus" and params["threshold"] > 0 and params["effective_dab_threshold"] > 0
    assert len(params["stain_vectors"]["dab"]) == 3


def _done_copy(job, result):
    AnalysisJob.objects.filter(pk=job.pk).update(status=JobStatus.DONE, result_file=result.result_file,
                                                 summary=result.summary)
    job.refresh_from_db()
    return job


def _pdf_text(data: bytes) -> str:
    import io

    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).replace("\n", "")


def test_report_and_fhir_name_the_model_that_ran(personas, clinical_model, media_root):
    model = clinical_model
    result = job_with_result(personas["case"], n=2000, seed=1)
    job = _done_copy(started(result.slide, detector=model.name), result)
    draft = do_create_draft(personas["case"], job, personas["pathologist"])
    for entry in fhir_bundle(draft)["entry"][1:]:
        text = entry["resource"]["method"]["text"]
        assert model.name in text and model.sha256 in text and pdl1site.__version__ in text
        assert "classic" not in text
    pdf = _pdf_text(build_pdf(draft))
    assert model.name in pdf and model.sha256 in pdf and f"platform version {pdl1site.__version__}" in pdf
    assert "classic colour deconvolution" not in pdf


def test_report_of_a_classic_job_says_classic_with_its_parameters(personas):
    result = job_with_result(personas["case"], n=2000, seed=2)
    job = _done_copy(started(result.slide, detector="classic"), result)
    draft = do_create_draft(personas["case"], job, personas["pathologist"])
    text = fhir_bundle(draft)["entry"][1]["resource"]["method"]["text"]
    assert "classic colour deconvolution" in text and "threshold 0.12" in text and "sha256" not in text


def test_report_of_an_adaptive_classic_job_states_the_slide_cut(personas, monkeypatch):
    from analysis import classic

    monkeypatch.setitem(classic.DEFAULT_CUT, "membrane", classic.ADAPTIVE)  # PD-L1's compartment, read adaptively
    result = job_with_result(personas["case"], n=2000, seed=3)
    job = _done_copy(started(result.slide, detector="classic"), result)
    job.summary = {**job.summary, "dab_threshold": 0.3125}  # what merge records for an adaptive cut
    job.save(update_fields=["summary"])
    text = fhir_bundle(do_create_draft(personas["case"], job, personas["pathologist"]))["entry"][1]["resource"]["method"]["text"]
    assert "dab_threshold adaptive (this slide: DAB OD 0.3125)" in text


# --- item 4: which detectors clinical jobs take ------------------------------------------------------

def test_api_refuses_paths_and_research_models_with_one_answer(synthetic_slide, personas, clinical_model,
                                                              research_model):
    api = api_for(personas["pathologist"])
    answers = []
    for value in ("/etc/passwd", "/etc/no-such-file-here", str(registry.STARTER_FILE), "../../etc/passwd",
                  registry.STARTER_NAME, research_model.name, str(research_model.pk), "nope", "²", "9" * 40):
        response = api.post("/api/jobs/", {"slide": synthetic_slide.pk, "detector": value}, format="json")
        assert response.status_code == 400, value
        answers.append(response.content)
    assert len(set(answers)) == 1  # a file that exists is answered like one that does not
    assert b"classic" in answers[0] and clinical_model.name.encode() in answers[0]
    assert b"research-v1" not in answers[0] and registry.STARTER_NAME.encode() not in answers[0]
    assert AnalysisJob.objects.count() == 0


def test_api_takes_a_clinical_model_by_name_or_id(white_slide, personas, clinical_model):
    api = api_for(personas["admin"])
    for value in (clinical_model.name, str(clinical_model.pk)):
        response = api.post("/api/jobs/", {"slide": white_slide.pk, "detector": value}, format="json")
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["model_version"] == clinical_model.pk and body["provenance"]["sha256"] == clinical_model.sha256
        assert body["software_version"] == pdl1site.__version__


def test_web_form_lists_the_real_choices_and_refuses_a_path(synthetic_slide, personas, clinical_model,
                                                            research_model):
    web = Client()
    web.force_login(personas["pathologist"])
    url = f"/slides/{synthetic_slide.pk}/analysis/"
    page = web.get(url).content.decode()
    assert '<option value="classic" selected>' in page and "default" in page
    assert f'<option value="{clinical_model.name}">' in page
    assert research_model.name not in page and registry.STARTER_NAME not in page
    response = web.post(url, {"detector": "/etc/passwd"}, follow=True)
    assert "unknown detector" in response.content.decode() and AnalysisJob.objects.count() == 0


def test_the_research_cli_still_takes_research_models_and_checkpoint_files(personas, media_root, research_model):
    slide = SlideFactory(case=personas["case"])
    with pytest.raises(JobError, match="unknown detector"):
        started(slide, detector=research_model.name)
    job = started(slide, detector=research_model.name, research=True)
    assert job.model_version == research_model and job.provenance["sha256"] == research_model.sha256
    loose = tiny_checkpoint(media_root / "loose.pt", seed=4)
    job = started(slide, detector=str(loose), research=True)
    assert job.model_version is None and job.provenance == {
        "kind": "checkpoint-file", "path": str(loose.resolve()), "sha256": registry.sha256_file(loose)}


def test_a_model_status_gates_clinical_use(personas, research_model):
    slide = SlideFactory(case=personas["case"])
    research_model.set_status(ModelStatus.CLINICAL)
    research_model.save()
    assert started(slide, detector=research_model.name).model_version == research_model
