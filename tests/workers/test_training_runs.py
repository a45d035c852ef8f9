"""Training runs (workers.training): their own queue, progress (steps, loss, ETA), cooperative cancel
that registers nothing, and the project page and API that show and cancel them. Data: SYNTHETIC."""

import pytest

from analysis.choices import ModelStatus
from analysis.models import ModelVersion
from annotations import dataset, services
from tests.annotations import client_for
from tests.workers.synthetic_dataset import write_synthetic_dataset
from workers import training
from workers.choices import TRAINING_QUEUE, TrainingStatus
from workers.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def project(personas):
    return services.do_create_project(personas["pathologist"], "training", "lung_squamous", "PD-L1", [],
                                      [personas["annotator"]])


@pytest.fixture
def folder(tmp_path):
    return write_synthetic_dataset(tmp_path / "dataset")


def queued_run(project, folder, name="tiny-run", steps=3, **kwargs):
    """A queued run's row, not handed to any queue (the test runs its task itself)."""
    return TrainingRun.objects.create(group=dataset.training_group(project), dataset=str(folder), name=name,
                                      steps_total=steps, backbone="resnet18", mpp=0.5, **kwargs)


def cancel_at(monkeypatch, run, at_step):
    """Ask for the run's cancel (the real service) when the loop reports `at_step`."""
    original = training._Progress.__call__

    def hooked(self, report):
        if report.step == at_step:
            training.do_cancel_training(TrainingRun.objects.get(pk=run.pk))
        return original(self, report)

    monkeypatch.setattr(training._Progress, "__call__", hooked)


def test_training_is_queued_on_the_training_queue_not_the_analysis_one(project, folder, monkeypatch):
    queued = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda *args, **kwargs: queued.append((args, kwargs)) or "t-1")
    run = training.do_queue_training(group=dataset.training_group(project), dataset=str(folder), name="q-run",
                                     steps=5, backbone="resnet18", mpp=0.5)
    [(args, kwargs)] = queued
    assert args == ("workers.training.run_training", run.pk)
    assert kwargs["cluster"] == TRAINING_QUEUE == "training"
    run.refresh_from_db()
    assert run.task_id == "t-1" and run.status == TrainingStatus.QUEUED


def test_a_finished_run_records_its_progress_and_registers_a_research_model(project, folder):
    run = queued_run(project, folder)
    assert training.run_training(run.pk) == "tiny-run"
    run.refresh_from_db()
    assert run.status == TrainingStatus.DONE and run.steps_done == run.steps_total == 3
    assert run.loss is not None and run.loss > 0 and run.eta_seconds == 0.0 and run.progress_at is not None
    version = ModelVersion.objects.get(name="tiny-run")
    assert run.model_version == version and version.status == ModelStatus.RESEARCH
    assert version.synthetic and version.metrics  # held-out (val) fields were evaluated


def test_a_running_run_cancelled_stops_at_the_next_step_and_registers_nothing(project, folder, monkeypatch):
    run = queued_run(project, folder, steps=50)
    cancel_at(monkeypatch, run, at_step=2)
    assert training.run_training(run.pk) == "cancelled"
    run.refresh_from_db()
    assert run.status == TrainingStatus.CANCELLED and run.steps_done == 2 and run.finished_at is not None
    assert not ModelVersion.objects.filter(name=run.name).exists() and run.model_version is None


def test_a_cancel_during_the_final_evaluation_still_registers_nothing(project, folder, monkeypatch):
    run = queued_run(project, folder, steps=3)
    cancel_at(monkeypatch, run, at_step=3)  # the report after the last step: training is over
    assert training.run_training(run.pk) == "cancelled"
    run.refresh_from_db()
    assert run.status == TrainingStatus.CANCELLED and not ModelVersion.objects.filter(name=run.name).exists()


def test_a_queued_run_cancelled_never_starts_and_an_ended_one_cannot_be_cancelled(project, folder):
    run = training.do_cancel_training(queued_run(project, folder))
    assert run.status == TrainingStatus.CANCELLED and run.cancel_requested
    assert training.run_training(run.pk) == "not started: cancelled"
    assert TrainingRun.objects.get(pk=run.pk).steps_done == 0
    with pytest.raises(training.TrainingError, match="already ended"):
        training.do_cancel_training(run)


def test_a_name_of_a_queued_run_cannot_be_given_to_another(project, folder):
    queued_run(project, folder, name="taken-name")
    with pytest.raises(services.AnnotationError) as refused:
        dataset.check_training_request("taken-name", 10, "resnet18")
    assert refused.value.problems == ["name 'taken-name': a training run with this name is queued or running"]


def test_a_second_click_during_the_export_queues_no_second_run(project, folder, personas, monkeypatch, settings):
    """The name check runs before the export (seconds): a second request arriving meanwhile passes it too.
    The database refuses the second unfinished run of one name, and the refused request's export is removed."""
    exported = []

    def export(project_, mpp=0.5):
        out = settings.MEDIA_ROOT / "datasets" / f"export-{len(exported)}"
        write_synthetic_dataset(out, train=1, val=1, size=64)  # a folder as exported (its manifest names the marker)
        exported.append(out)
        if len(exported) == 1:  # the second click lands while the first is exporting, and finishes first
            dataset.do_queue_training(project, "dup-v1", steps=3, user=personas["pathologist"])
        return out, {"fields": []}

    monkeypatch.setattr(dataset, "accepted_sessions", lambda project=None: _AnyAccepted())
    monkeypatch.setattr(dataset, "do_export_project_dataset", export)
    monkeypatch.setattr(training, "enqueue_training", lambda *args, **kwargs: "task")
    with pytest.raises(services.AnnotationError) as refused:
        dataset.do_queue_training(project, "dup-v1", steps=3, user=personas["pathologist"])
    assert "queued or running already" in refused.value.problems[0]
    assert list(TrainingRun.objects.values_list("name", "status")) == [("dup-v1", "queued")]
    assert [out.exists() for out in exported] == [False, True]  # the refused request's export is removed


class _AnyAccepted:
    def exists(self):
        return True


@pytest.mark.parametrize("name, problem", [("classic", "reserved"), ("a" * 101, "at most 100 characters")])
def test_names_that_could_never_be_registered_are_refused_before_training(name, problem):
    with pytest.raises(services.AnnotationError) as refused:
        dataset.check_training_request(name, 10, "resnet18")
    assert problem in refused.value.problems[0]


def test_api_lists_progress_and_cancels(project, folder, personas):
    running = queued_run(project, folder, name="running-run", steps=100)
    TrainingRun.objects.filter(pk=running.pk).update(status=TrainingStatus.RUNNING, steps_done=40, loss=1.25,
                                                     eta_seconds=90.0)
    url = f"/api/annotation/projects/{project.pk}/training-runs/"
    api = client_for(personas["pathologist"])
    [row] = api.get(url).json()
    assert (row["name"], row["status"], row["steps_done"], row["steps_total"], row["loss"], row["eta_seconds"]) == (
        "running-run", "running", 40, 100, 1.25, 90.0)
    assert client_for(personas["annotator"]).get(url).status_code == 403
    assert client_for(personas["outsider"]).get(url).status_code == 404

    cancel = f"{url}{running.pk}/cancel/"
    assert client_for(personas["annotator"]).post(cancel).status_code == 403
    answer = api.post(cancel)
    assert answer.status_code == 200
    assert answer.json()["state"] == "Cancelling (stops after the current step)" and answer.json()["status"] == "running"
    TrainingRun.objects.filter(pk=running.pk).update(status=TrainingStatus.CANCELLED)
    assert api.post(cancel).status_code == 409
    assert api.post(f"{url}{running.pk + 1000}/cancel/").status_code == 404


def test_project_page_shows_progress_and_its_cancel_button_cancels(project, folder, personas):
    run = queued_run(project, folder, name="page-run", steps=100)
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.RUNNING, steps_done=25, loss=0.5,
                                                 eta_seconds=3723.0)
    client = client_for(personas["pathologist"])
    page = client.get(f"/annotate/projects/{project.pk}/").content.decode()
    assert "25 / 100 steps" in page and "0.500" in page and "about 1:02:03 left" in page
    cancel = f"/annotate/projects/{project.pk}/training-runs/{run.pk}/cancel/"
    assert f'action="{cancel}"' in page
    assert client_for(personas["annotator"]).post(cancel).status_code == 403
    assert client_for(personas["outsider"]).post(cancel).status_code == 404
    page = client.post(cancel, follow=True).content.decode()
    assert "Training page-run: cancelling (stops after the current step). Nothing will be registered." in page
    assert TrainingRun.objects.get(pk=run.pk).cancel_requested and f'action="{cancel}"' not in page
