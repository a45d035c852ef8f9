"""One of everything, around the personas' case: for the permission matrix and the API fuzz run.

A plain function (not a fixture) so that a live site's setup subprocess can build the same world.
"""

from pathlib import Path

from PIL import Image


def build_world(people: dict, media_root: Path) -> dict:
    """people: tests.conftest.make_personas(); files go under media_root (settings.MEDIA_ROOT)."""
    from annotations import services as annotation_services
    from cases.reports import do_create_draft, do_sign
    from cases.services import IngestSource, do_ingest_slide
    from tests.conftest import shared_slide
    from tests.factories import CaseFactory
    from tests.viewer import job_with_result
    from viewer import regions as viewer_regions

    case, pathologist = people["case"], people["pathologist"]
    slide = do_ingest_slide([IngestSource(name="small.svs", path=shared_slide("small.svs"))], case=case).slide
    job = job_with_result(case, n=200, seed=3)
    (Path(media_root) / "thumbs").mkdir(exist_ok=True)
    Image.new("RGB", (40, 30), (230, 220, 215)).save(Path(media_root) / "thumbs" / f"{job.slide.pk}.png")
    job.slide.thumbnail = f"thumbs/{job.slide.pk}.png"
    job.slide.save()
    region = viewer_regions.do_add_region(job, pathologist, {
        "base_version": 0, "kind": "tumour", "vertices": [[0, 0], [1000, 0], [1000, 1000]]})["item"]
    signed = do_sign(do_create_draft(case, job, pathologist, comment="signed"), pathologist, "pw-for-tests-123")
    # a case with a signed report takes amendments, not drafts: the draft is of a second case
    second = CaseFactory(patient=case.patient)
    draft = do_create_draft(second, job_with_result(second, n=50, seed=4), pathologist, comment="draft")
    project = annotation_services.do_create_project(pathologist, "matrix", "lung_squamous", "PD-L1", (),
                                                    [people["annotator"]])
    field = annotation_services.do_create_field(project, job.slide, 1000, 1000, 512, 512, user=pathologist)
    session = field.sessions.get(annotator=people["annotator"])
    return {**people, "slide": slide, "job": job, "region": region, "signed": signed, "draft": draft,
            "project": project, "field": field, "session": session}
