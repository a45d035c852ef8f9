"""A training run's progress on the annotation project page, live, in headless Chromium against a live
daphne site with a real `qcluster` on the training queue: the row goes from queued to training and its
steps, loss, ETA and bar move without a reload (workers/static/workers/training_runs.js polls the
training-runs API); the Cancel button stops the run, and the page shows it cancelled by itself.
Dataset: SYNTHETIC (tests.workers.synthetic_dataset). Screenshot in test-artifacts/.
"""

from pathlib import Path

import pytest

from tests.viewer.browser import CHROMIUM, chromium_browser, logged_in_page, main as setup_main
from tests.viewer.browser import screenshot, site_fixture
from tests.workers.processes import Cluster
from workers.choices import TRAINING_QUEUE

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM}"),
]

STEPS = 100_000  # never reached: the test cancels it


def _setup(tmp: Path) -> dict:
    from django.conf import settings

    from annotations import dataset, services
    from cases.choices import Role
    from tests.factories import DepartmentFactory, make_user
    from tests.workers.synthetic_dataset import write_synthetic_dataset
    from workers.training import do_queue_training

    pathologist = make_user(Role.PATHOLOGIST, [DepartmentFactory(code="dept-a")], username="pathologist")
    project = services.do_create_project(pathologist, "training batch", "lung_squamous", "PD-L1")
    folder = write_synthetic_dataset(Path(settings.MEDIA_ROOT) / "datasets" / "browser-training", size=128)
    # Queued on the training queue now; no training worker runs until the test starts one.
    run = do_queue_training(group=dataset.training_group(project), dataset=str(folder), name="live-progress",
                            steps=STEPS, backbone="resnet18", mpp=0.5, user=pathologist)
    return {"project": project.pk, "run": run.pk}


def main() -> None:
    setup_main(_setup)


site = site_fixture(__name__, "training-site")


def at_least(run: int, steps: int) -> str:
    """A predicate for wait_for_function: the run's row shows at least `steps` steps done."""
    return (f"() => {{ const r = document.querySelector('tr[data-run=\"{run}\"]');"
            f" return r !== null && parseInt(r.querySelector('.run-steps').textContent) >= {steps}; }}")


def steps_of(row) -> int:
    return int(row.locator(".run-steps").text_content().split("/")[0])


def test_training_progress_updates_live_and_cancel_stops_the_run(site, request):
    project, run = site.data["project"], site.data["run"]
    with chromium_browser() as browser, logged_in_page(browser, site.url, "pathologist",
                                                       shot=request.node.name) as page:
        page.goto(f"{site.url}/annotate/projects/{project}/")
        row = page.locator(f'tr[data-run="{run}"]')
        assert row.locator(".run-state").text_content().strip() == "Queued"
        assert row.locator(".run-steps").text_content() == f"0 / {STEPS} steps"
        training = Cluster("training", {**site.env, "OMP_NUM_THREADS": "1"}, site.tmp / "training.log",
                           queue=TRAINING_QUEUE)
        try:
            training.wait_ready(120)
            page.wait_for_function(at_least(run, 1), timeout=240_000)
            first = steps_of(row)
            page.wait_for_function(at_least(run, first + 1), timeout=120_000)
            # Nobody reloaded: the script updated the row from the API.
            assert page.evaluate("performance.getEntriesByType('navigation')[0].type") == "navigate"
            assert page.evaluate("window.pdl1Training.polls") >= 2
            assert row.locator(".run-state").text_content() == "Training"
            assert float(row.locator(".run-loss").text_content()) > 0
            assert row.locator(".run-eta").text_content().startswith("about ")
            assert row.locator("progress.run-bar").evaluate("bar => bar.value") > first
            row.scroll_into_view_if_needed()
            screenshot(page, f"{request.node.name}-running")
            with page.expect_navigation():
                row.locator("button", has_text="Cancel").click()
            assert "cancelling (stops after the current step)" in page.locator("body").text_content()
            # The run stops at its next step; the page notices it ended and reloads itself.
            page.wait_for_function(
                f"() => {{ const r = document.querySelector('tr[data-run=\"{run}\"]');"
                " return r !== null && r.textContent.includes('cancelled: nothing registered'); }", timeout=120_000)
            assert page.locator(f'tr[data-run="{run}"] progress.run-bar').count() == 0
            assert page.locator(f'tr[data-run="{run}"] button', has_text="Cancel").count() == 0
            page.locator(f'tr[data-run="{run}"]').scroll_into_view_if_needed()
        finally:
            training.stop()
