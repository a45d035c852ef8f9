"""Promotion review (issue 18 item 2): a research model is compared with the current default on the
same held-out fields, promoted only with a reason and an evaluation; empty metrics or no held-out
split refuse; research models never feed signed reports. Data: SYNTHETIC."""

import pytest

from analysis import promotion, registry
from analysis.choices import JobStatus, ModelStatus
from analysis.models import AnalysisJob, ModelEvaluation, ModelVersion
from cases.models import ReportError
from cases.reports import do_create_draft, do_sign
from tests.analysis.test_registry import tiny_checkpoint
from tests.annotations import client_for
from tests.viewer import job_with_result
from tests.workers.synthetic_dataset import write_synthetic_dataset

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pw-for-tests-123"
NO_PARENT = {"initialised_from": None, "models": [], "trained_fields": [], "unchecked": ""}  # trained from scratch


@pytest.fixture
def candidate(media_root, tmp_path):
    folder = write_synthetic_dataset(tmp_path / "held", train=1, val=2, size=96)
    spec = f"folder:{folder}"
    return registry.register_checkpoint(
        tiny_checkpoint(media_root / "cand.pt"), "candidate-v1", metrics={spec: {"fields": 2}},
        training_data={"synthetic": True, "lineage": NO_PARENT, "sources": [{"source": spec, "synthetic": True,
                                                                             "fields": {"train": 1, "val": 2}}]})


def test_empty_metrics_or_no_held_out_split_cannot_be_promoted(candidate, personas, media_root):
    empty = registry.register_checkpoint(tiny_checkpoint(media_root / "e.pt", seed=1), "empty-v1", metrics={},
                                         training_data={"sources": []})
    with pytest.raises(promotion.PromotionError, match="empty metrics"):
        promotion.do_evaluate(empty)
    with pytest.raises(promotion.PromotionError, match="empty metrics"):
        promotion.do_promote(empty, personas["admin"], "looks fine")
    unsplit = registry.register_checkpoint(tiny_checkpoint(media_root / "u.pt", seed=2), "unsplit-v1",
                                           metrics={"x": 1}, training_data={"sources": [
                                               {"source": "folder:/nowhere", "fields": {"train": 3}}]})
    with pytest.raises(promotion.PromotionError, match="no held-out evaluation"):
        promotion.do_evaluate(unsplit)
    assert empty.status == unsplit.status == ModelStatus.RESEARCH


def test_evaluate_scores_both_on_the_same_fields_then_promote_needs_a_reason(candidate, personas):
    with pytest.raises(promotion.PromotionError, match="evaluate it first"):
        promotion.do_promote(candidate, personas["pathologist"], "good")
    evaluation = promotion.do_evaluate(candidate, personas["pathologist"])
    assert evaluation.baseline == "classic" and evaluation.fields == 2 and evaluation.synthetic
    assert evaluation.candidate_scores["fields"] == evaluation.baseline_scores["fields"] == 2
    assert evaluation.candidate_scores["n_truth"] == evaluation.baseline_scores["n_truth"] > 0  # same truth
    assert evaluation.candidate_scores["detector"] == "candidate-v1"
    assert evaluation.baseline_scores["detector"] == "classic"
    with pytest.raises(promotion.PromotionError, match="reason"):
        promotion.do_promote(candidate, personas["pathologist"], "  ")
    done = promotion.do_promote(candidate, personas["pathologist"], "better than classic on held-out fields")
    candidate.refresh_from_db()
    assert candidate.status == ModelStatus.CLINICAL and done.evaluation == evaluation
    assert (done.from_status, done.reason) == (ModelStatus.RESEARCH, "better than classic on held-out fields")


def test_review_page_shows_both_columns_and_promotes(candidate, personas):
    client = client_for(personas["pathologist"])
    page = client.get("/models/").content.decode()
    assert 'class="current-default">classic<' in page and "candidate-v1" in page
    client.post(f"/models/{candidate.pk}/evaluate/")
    page = client.get(f"/models/{candidate.pk}/").content.decode()
    assert "<th>candidate-v1</th><th>classic (default)</th>" in page and "Detection F1" in page
    page = client.post(f"/models/{candidate.pk}/promote/", {"reason": "reviewed"}, follow=True).content.decode()
    assert "candidate-v1 is released for clinical use." in page
    candidate.refresh_from_db()
    assert candidate.status == ModelStatus.CLINICAL


def test_a_research_model_never_feeds_a_signed_report(candidate, personas):
    result = job_with_result(personas["case"], n=300, seed=4)
    AnalysisJob.objects.filter(pk=result.pk).update(model_version=candidate, detector=candidate.name,
                                                    provenance={"kind": "model"}, status=JobStatus.DONE)
    result.refresh_from_db()
    draft = do_create_draft(personas["case"], result, personas["pathologist"])  # a draft says what ran
    with pytest.raises(ReportError, match="research models never feed signed reports"):
        do_sign(draft, personas["pathologist"], PASSWORD)
    candidate.set_status(ModelStatus.CLINICAL)
    candidate.save()
    # The draft still says "research use only": it is prepared again before it is signed.
    with pytest.raises(ReportError, match="the analysis method or its model's status"):
        do_sign(draft, personas["pathologist"], PASSWORD)
    draft = do_create_draft(personas["case"], AnalysisJob.objects.get(pk=result.pk), personas["pathologist"])
    assert draft.scores["method"]["model_status"] == ModelStatus.CLINICAL
    assert do_sign(draft, personas["pathologist"], PASSWORD).status == "signed"


def test_the_analysis_menu_preselects_the_real_default(candidate, personas):
    from tests.viewer import SlideFactory
    from workers.services import detector_choices

    slide = SlideFactory(case=personas["case"])
    assert [c["value"] for c in detector_choices(slide) if c["default"]] == ["classic"]
    assert candidate.name not in [c["value"] for c in detector_choices(slide)]  # research: not offered
    promotion.do_evaluate(candidate)
    promotion.do_promote(candidate, personas["admin"], "reviewed")
    candidate.refresh_from_db()
    candidate.activate("", "PD-L1")
    page = client_for(personas["pathologist"]).get(f"/slides/{slide.pk}/analysis/").content.decode()
    assert f'<option value="{candidate.name}" selected>' in page and "- default" in page
    assert page.count(" selected>") == 1


def test_the_admin_withdraws_a_model_but_never_releases_or_recards_it(candidate, personas):
    from django.contrib.admin.sites import site
    from django.test import RequestFactory

    admin = site._registry[ModelVersion]
    request = RequestFactory().post("/admin/")
    request.user = personas["admin"]
    form_class = admin.get_form(request, candidate)  # the form the admin's change page shows
    assert not {"name", "metrics", "training_data"} & set(form_class.base_fields)
    form = form_class({"status": ModelStatus.CLINICAL, "notes": ""}, instance=candidate)
    assert not form.is_valid() and "promotion on the Models page" in str(form.errors["status"])
    candidate.refresh_from_db()
    assert candidate.status == ModelStatus.RESEARCH and not registry.clinical_models().filter(pk=candidate.pk).exists()

    candidate.set_status(ModelStatus.CLINICAL)
    candidate.save()
    form = form_class({"status": ModelStatus.RESEARCH, "notes": "withdrawn"}, instance=candidate)
    assert form.is_valid(), form.errors
    form.save()
    candidate.refresh_from_db()
    assert candidate.status == ModelStatus.RESEARCH


def test_a_held_out_split_with_the_same_count_but_other_fields_is_refused(candidate, personas):
    from analysis import datasets

    spec = candidate.training_data["sources"][0]["source"]
    val = sorted(s.name for s in datasets.load_source(spec, candidate.mpp) if s.split == "val")
    assert len(val) == 2
    sources = [{**candidate.training_data["sources"][0], "val_fields": [val[0], "a-field-it-trained-on"]}]
    ModelVersion.objects.filter(pk=candidate.pk).update(training_data={**candidate.training_data, "sources": sources})
    candidate.refresh_from_db()
    with pytest.raises(promotion.PromotionError, match="other fields than when candidate-v1 was trained"):
        promotion.do_evaluate(candidate, personas["pathologist"])
    sources[0]["val_fields"] = val  # the fields recorded at training: compared as recorded
    ModelVersion.objects.filter(pk=candidate.pk).update(training_data={**candidate.training_data, "sources": sources})
    candidate.refresh_from_db()
    assert promotion.do_evaluate(candidate, personas["pathologist"]).fields == 2


def test_a_training_card_records_which_fields_were_held_out():
    from analysis import datasets

    samples = datasets.synthetic_samples(3, "val", 0.5) + datasets.synthetic_samples(2, "train", 0.5)
    described = datasets.describe(samples)
    assert described[0]["val_fields"] == sorted(s.name for s in samples if s.split == "val")


def test_the_classic_baseline_reads_the_nucleus_on_ki67_held_out_fields(candidate):
    spec = candidate.training_data["sources"][0]["source"]
    assert promotion.source_compartment(spec) == "membrane"  # its manifest records PD-L1
    assert promotion.source_compartment("bcdata") == promotion.source_compartment("db:Ki67") == "nucleus"


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_a_model_file_that_cannot_be_loaded_is_a_message_not_a_500(candidate, personas, damage):
    path = candidate.path()
    if damage == "missing":
        path.unlink()
    else:
        path.chmod(0o644)
        path.write_bytes(b"not a checkpoint")
    client = client_for(personas["pathologist"])
    client.raise_request_exception = False
    response = client.post(f"/models/{candidate.pk}/evaluate/", follow=True)
    assert response.status_code == 200
    assert "cannot be loaded" in response.content.decode()
    assert not candidate.evaluations.exists()


def test_a_model_measured_on_one_marker_never_becomes_the_other_markers_default(candidate, personas, media_root):
    """A model evaluated on Ki-67 fields (classic read in the nucleus) was accepted as the PD-L1 default: its
    evaluation recorded PD-L1 and the same baseline name. The evaluation now states the fields' marker,
    compares with that marker's default, and activation checks the marker."""
    from analysis.choices import Marker

    ki67 = registry.register_checkpoint(
        tiny_checkpoint(media_root / "ki67.pt", seed=5), "ki67-v1", metrics={"bcdata": {"fields": 5}},
        training_data={"synthetic": False, "lineage": NO_PARENT, "sources": [{"source": "db:Ki67", "synthetic": False,
                                                                              "fields": {"train": 2, "val": 1}}]})
    assert promotion.evaluation_marker(ki67) == Marker.KI67
    assert promotion.evaluation_marker(candidate) == Marker.PDL1
    evaluation = ModelEvaluation.objects.create(  # what do_evaluate records for Ki-67 held-out fields
        model_version=ki67, baseline="classic", baseline_sha256="", marker=Marker.KI67, data="held-out", fields=1,
        candidate_scores={}, baseline_scores={},
        per_source=[{"source": "db:Ki67", "fields": 1, "synthetic": False, "candidate": {}, "default": {}}])
    assert promotion.current_evaluation(ki67) == evaluation
    promotion.do_promote(ki67, personas["admin"], "better on Ki-67 held-out fields")
    ki67.refresh_from_db()
    with pytest.raises(ValueError, match="another marker than PD-L1"):
        ki67.activate("", Marker.PDL1)
    ki67.activate("", Marker.KI67)
    assert registry.default_detector_name(None, Marker.KI67) == "ki67-v1"
    assert registry.default_detector_name(None, Marker.PDL1) == "classic"


def test_a_model_card_with_a_bare_db_source_still_opens_its_review_page(candidate, personas):
    ModelVersion.objects.filter(pk=candidate.pk).update(training_data={"sources": [
        {"source": "db", "fields": {"train": 2, "val": 1}}]})  # a card from before db:MARKER
    response = client_for(personas["pathologist"]).get(f"/models/{candidate.pk}/")
    assert response.status_code == 200


def test_a_ki67_model_promoted_before_evaluations_named_their_marker_stays_off_pd_l1(personas, media_root):
    """Evaluations recorded before they named the fields' marker all say PD-L1: the model's own held-out fields
    decide the marker it may be the default of."""
    from analysis.choices import Marker

    ki67 = registry.register_checkpoint(
        tiny_checkpoint(media_root / "old-ki67.pt", seed=6), "old-ki67-v1", metrics={"bcdata": {"fields": 5}},
        training_data={"synthetic": False, "sources": [{"source": "bcdata", "fields": {"train": 20, "val": 5}}]})
    legacy = ModelEvaluation.objects.create(model_version=ki67, baseline="classic", baseline_sha256="",
                                            marker=Marker.PDL1, data="held-out", fields=5, candidate_scores={},
                                            baseline_scores={})
    from analysis.models import ModelPromotion

    ki67.set_status(ModelStatus.CLINICAL)
    ki67.save()
    ModelPromotion.objects.create(model_version=ki67, evaluation=legacy, from_status=ModelStatus.RESEARCH,
                                  to_status=ModelStatus.CLINICAL, reason="before markers", promoted_by=personas["admin"])
    with pytest.raises(ValueError, match="another marker than PD-L1"):
        ki67.activate("", Marker.PDL1)
    assert registry.default_detector_name(None, Marker.PDL1) == "classic"


def test_a_ki67_model_already_active_for_pd_l1_is_not_the_pd_l1_default(personas, media_root):
    """Activated for PD-L1 before activation checked the marker: the row stays (audited history), but
    the default for PD-L1 jobs passes over it."""
    from analysis.choices import Marker
    from analysis.models import ActiveModel

    ki67 = registry.register_checkpoint(
        tiny_checkpoint(media_root / "active-ki67.pt", seed=7), "active-ki67-v1", metrics={"bcdata": {"fields": 5}},
        training_data={"synthetic": False, "sources": [{"source": "bcdata", "fields": {"train": 20, "val": 5}}]})
    ki67.set_status(ModelStatus.CLINICAL)
    ki67.save()
    ActiveModel.objects.create(indication="", marker=Marker.PDL1, model_version=ki67)  # as an older release did
    assert registry.default_detector_name(None, Marker.PDL1) == "classic"
    with pytest.raises(ValueError, match="another marker than PD-L1"):
        ki67.activate("", Marker.PDL1)
