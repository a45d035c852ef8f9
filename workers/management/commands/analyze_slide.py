"""python manage.py analyze_slide SLIDE [--mpp X] [--detector NAME] [--indication ...] [--workers N]
--json result.json [--report report.pdf] — the whole pipeline, embedded: no server and no queue needed."""

import json
import math
import multiprocessing
import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from analysis.argtypes import positive_int
from analysis.models import AnalysisJob
from cases.choices import Indication
from cases.models import Slide
from cases.services import IngestError, IngestSource, do_ingest_slide
from workers import queue
from workers.services import JobError, check_detector, check_parameters, do_start_job


class Command(BaseCommand):
    help = "Analyse a slide (a path, or the id of an imported slide) and write the result as JSON."

    def add_arguments(self, parser):
        parser.add_argument("slide", help="slide file path, or the id of an imported slide")
        parser.add_argument("--mpp", type=float, help="µm per pixel, for a slide that does not store it")
        parser.add_argument("--detector", help='"classic", a registered model (research ones too) or a checkpoint '
                                               "path (research use: web and API take only clinical models)")
        parser.add_argument("--indication", choices=Indication.values, help="picks the active model when "
                                                                             "no --detector is given")
        parser.add_argument("--workers", type=positive_int, default=1, help="processes detecting tiles in parallel")
        parser.add_argument("--batch-size", type=int, default=8, help="tiles per batch")
        parser.add_argument("--queue", action="store_true", dest="use_queue",
                            help="send the job to running qcluster workers instead, and wait for it")
        parser.add_argument("--json", required=True, dest="json_path", help="where to write the result")
        parser.add_argument("--report", dest="report_path",
                            help="also write a draft report PDF here (a file only: no Report row is created "
                                 "or changed; drafts are made by a pathologist)")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, slide, mpp, detector, indication, workers, batch_size, use_queue, json_path,
               no_progress, report_path=None, **options):
        if mpp is not None and not (math.isfinite(mpp) and mpp > 0):
            raise CommandError("--mpp must be a positive number")
        params = {"batch_size": batch_size, **({"mpp": mpp} if mpp else {})}
        # Everything that can be refused without the slide is refused before it is stored: a refusal used
        # to leave a stored slide in no case, and an unwritable --json cost a whole analysis.
        self._check_before_ingest(params, detector, json_path, report_path)
        slide_obj, created = self._slide(slide, mpp)
        if indication is None and slide_obj.case_id:
            indication = slide_obj.case.indication
        try:
            if detector is None and indication:
                from analysis.registry import default_detector_name

                detector = default_detector_name(indication, slide_obj.marker)
            with queue.collecting() as pending:
                try:
                    job = do_start_job(slide_obj, detector=detector, parameters=params, research=True)
                except JobError:
                    if created:  # refused for what only the stored slide tells (no mpp, too many tiles, ...)
                        _discard_new_slide(slide_obj)
                    raise
                if not use_queue:
                    self._run(pending, job, workers, not no_progress)
            if use_queue:
                for func, task_args in pending:
                    queue.enqueue(func, *task_args)
                job = self._wait(job, not no_progress)
        except JobError as exc:
            raise CommandError(str(exc)) from None
        job.refresh_from_db()
        if job.status != "done":
            raise CommandError(f"analysis {job.status}: {job.error or 'see the job in the admin'}")
        result = result_json(job)
        _write_output(json_path, json.dumps(result, indent=2).encode())
        if report_path:
            _write_output(report_path, draft_report_pdf(job))
        self.stdout.write(json.dumps({k: result[k] for k in ("counts", "tps", "tps_category", "tiles")}))

    @staticmethod
    def _check_before_ingest(params: dict, detector, json_path: str, report_path) -> None:
        try:
            check_parameters(params)
            if detector not in (None, ""):
                # research=True looks at no slide: a registered model (any status), a checkpoint file or classic.
                check_detector(detector, slide=None, research=True)
        except JobError as exc:
            raise CommandError(str(exc)) from None
        for flag, path in (("--json", json_path), ("--report", report_path)):
            if path:
                check_output_path(flag, path)

    def _slide(self, slide: str, mpp) -> tuple[Slide, bool]:
        """(the slide, whether this command stored it)."""
        if slide.isdigit() and not Path(slide).exists():
            found = Slide.objects.filter(pk=int(slide)).first()
            if found is None:
                raise CommandError(f"no imported slide with id {slide}")
            return found, False
        path = Path(slide)
        if not path.is_file():
            raise CommandError(f"{slide}: no such file")
        try:
            ingested = do_ingest_slide([IngestSource(name=path.name, path=path)], mpp=mpp)
        except IngestError as exc:
            raise CommandError(str(exc)) from None
        return ingested.slide, ingested.created

    def _run(self, pending, job, workers: int, progress: bool):
        """Run the queued stages here: split, then every detect batch (in N processes), then merge."""
        while pending:
            func, task_args = pending.pop(0)
            if not func.endswith("detect_batch"):
                queue.run(func, task_args)
                continue
            batches = [(func, task_args)] + [call for call in pending if call[0].endswith("detect_batch")]
            pending[:] = [call for call in pending if not call[0].endswith("detect_batch")]
            pending.extend(_run_batches(batches, workers, bar_for(job, progress)))

    def _wait(self, job, progress: bool):
        import time

        from tqdm import tqdm

        bar = tqdm(total=None, unit="batch", disable=not progress, file=sys.stderr)
        while True:
            job.refresh_from_db()
            bar.total = job.batches_total or None
            bar.n = job.batches_done
            bar.refresh()
            if job.is_final:
                bar.close()
                return job
            time.sleep(1)


def check_output_path(flag: str, path: str) -> None:
    """A file the command can write: not a folder, in a folder that exists and is writable."""
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise CommandError(f"{flag} {path}: is a folder; give a file name")
    if not folder.is_dir():
        raise CommandError(f"{flag} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise CommandError(f"{flag} {path}: not writable")


def _write_output(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:  # checked before the analysis, but a disk can fill up meanwhile
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None


def _discard_new_slide(slide: Slide) -> None:
    """Remove a slide this command has just stored (its row and its own folder) when its job is refused:
    nothing refers to it yet, and kept it would be a slide in no case that nobody asked to import."""
    import shutil

    from django.conf import settings

    own = Path(slide.file.name).parent  # slides/<xx>/<sha256>-<uuid> (cases.services._register): this slide's alone
    Slide.objects.filter(pk=slide.pk).delete()
    if own.parts[:1] == ("slides",) and len(own.parts) == 3:
        shutil.rmtree(Path(settings.MEDIA_ROOT) / own, ignore_errors=True)


def bar_for(job, progress: bool):
    from tqdm import tqdm

    job.refresh_from_db()
    return tqdm(total=job.batches_total, unit="batch", desc=f"job {job.pk}", disable=not progress, file=sys.stderr)


def _batch_in_child(call):
    """Run one detect batch in a worker process; hand back the stages it queued (the merge)."""
    func, task_args = call
    with queue.collecting() as pending:
        queue.run(func, task_args)
    return list(pending)


def _limit_threads(threads: int) -> None:
    """Pool initializer: N workers share the cores instead of each starting one torch thread per core."""
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:  # imported before the fork: the variables are only read at import
        sys.modules["torch"].set_num_threads(threads)


def _run_batches(calls, workers: int, bar):
    queued = []
    if workers == 1:
        for call in calls:
            queued.extend(_batch_in_child(call))
            bar.update(1)
    else:
        connections.close_all()  # forked children open their own database connections
        threads = max(1, (os.cpu_count() or 1) // workers)
        with multiprocessing.get_context("fork").Pool(processes=workers, initializer=_limit_threads,
                                                      initargs=(threads,)) as pool:
            for more in pool.imap_unordered(_batch_in_child, calls):
                queued.extend(more)
                bar.update(1)
    bar.close()
    return queued


SCORES_BASIS = ("as the viewer and a report state them: the slide's regions and the corrections carried over from "
                "an earlier run applied, interpreted with the case's assay and indication cut-offs")


def draft_report_pdf(job: AnalysisJob) -> bytes:
    """A draft report PDF of `job`, never stored: the command line writes no Report row.

    It used to save the case's draft, and so re-pointed a pathologist's open draft (their comment kept)
    at this uncorrected job: a file that matched a clinical slide was enough.  Drafts are made by a
    pathologist on the case page or through the API (cases.reports.do_create_draft with its checks).
    """
    from analysis.scoring import Interval, score_summary
    from cases.choices import ReportStatus
    from cases.models import Report
    from cases.report_pdf import build_pdf
    from cases.reports import method_of, score_snapshot
    from cases.results import job_results

    case = job.slide.case if job.slide.case_id else None
    if case is not None:
        latest = case.reports.order_by("-version").first()
        # The version it would be: the open draft's, or the one after the latest signed report.
        version = 1 if latest is None else latest.version if latest.status == ReportStatus.DRAFT else latest.version + 1
        report = Report(case=case, version=version, job=job,
                        scores=score_snapshot(case, job))
        return build_pdf(report, job=job)
    # No case: no cut-off table (research use, no category); the counts are the JSON's (result_json).
    results = job_results()
    scored = results.scores(job)
    interval = Interval(**scored["tps_interval"]) if scored["tps_interval"] else None
    scores = {**score_summary(scored["counts"], tps_interval=interval),
              "corrections_version": results.correction_version(job), "method": method_of(job)}
    scores["tps"]["detector_error"] = scored["detector_error"]
    return build_pdf(Report(version=1, job=job, scores=scores), job=job)


def result_json(job: AnalysisJob) -> dict:
    """The command's JSON. Its scores are the viewer's and a report's (cases.results.job_results().scores,
    which the viewer provides: viewer.scores.job_scores): the
    slide's regions and any corrections carried over applied, the adequacy minimum, the category under the
    case's clone and indication table (none for a slide in no case, none below 100 viable tumour cells).
    The merge's whole-slide detection counts are kept apart, labelled, with no TPS: one TPS per job."""
    from django.conf import settings

    from cases.results import job_results
    from workers.progress import detections_before_review

    scores = job_results().scores(job)
    return {
        "slide": job.slide_id,
        "job": job.pk,
        "counts": scores["counts"],
        "tps": scores["tps"],
        "tps_category": scores["tps_category"],
        "category_note": scores["category_note"],
        "adequacy": scores["adequacy"],
        "scores_basis": SCORES_BASIS,
        "detections_before_review": detections_before_review(job),
        "tiles": job.tiles_total,
        "tissue_area_mm2": job.tissue_area_mm2,
        "timings_s": job.timings,
        "detector": job.detector,
        "detector_version": (job.provenance.get("sha256") or "")[:12] or (
            job.model_version.sha256[:12] if job.model_version else "classic"),
        "provenance": job.provenance,
        "software_version": job.software_version,
        "detections_file": str(Path(settings.MEDIA_ROOT) / job.result_file),
    }
