"""Corrections carried over to a re-run of the analysis (issue 18, item 5).

A new run of a slide finds its own detections, at slightly different places and with new store
indices, so the pathologist's corrections of the earlier run cannot be applied as they are. When a
job is done, the active corrections of the slide's previous done job are matched to the new
detections by position, within CARRY_RADIUS_UM (level-0 px from the slide's pixel size):

* a deleted detection: the nearest new detection within the radius is deleted;
* a reclassified detection: the nearest new detection is given the pathologist's class (nothing to
  save when the new run already says so);
* an added cell: a new detection within the radius is that cell (reclassified when its class
  differs); otherwise the cell is added again at the same place.

A new detection serves one correction at most. A delete or reclassify with no new detection within
the radius is not carried: the job's CorrectionSet.carry_report lists each one (where, what, why)
with a message for the viewer. Regions belong to the slide and need no carrying. Signed reports
keep their stored documents (cases.documents) whatever happens here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from django.db import transaction
from django.utils import timezone

from analysis.choices import JobStatus
from analysis.labels import LABEL_NAMES
from viewer.choices import CorrectionOp
from viewer.overlay import CorrectionState, fold_corrections

CARRY_RADIUS_UM = 4.0
FALLBACK_MPP = 0.5  # a slide without a pixel size: the detectors' working resolution

log = logging.getLogger(__name__)


@dataclass
class CarryPlan:
    """What to save on the new job (`ops`: Correction fields, with the source row's pk) and what could
    not be carried (`missed`: descriptions for the report)."""

    ops: list[dict] = field(default_factory=list)
    missed: list[dict] = field(default_factory=list)
    already: int = 0  # corrections the new run already agrees with (nothing to save)


def sources_of(rows) -> dict:
    """The active correction row behind each effect of fold_corrections(rows): ("d", store index) for
    a deleted or reclassified detection, ("c", correction id) for an added point."""
    found = {}
    for row in sorted(rows, key=lambda r: r.version):
        if row.undone_by_id is not None or row.op == CorrectionOp.UNDO:
            continue
        if row.op == CorrectionOp.ADD:
            found[("c", row.pk)] = row
        elif row.target_id is not None:
            found.setdefault(("c", row.target_id), row)
        else:
            found[("d", int(row.detection))] = row
    return found


def plan_carry(old_xy: dict, old_state: CorrectionState, sources: dict, new_xy, new_labels, radius_px: float) -> CarryPlan:
    """Match the old run's corrections (old_xy: store index -> (x, y) of its deleted and reclassified
    detections) to the new run's detections."""
    from scipy.spatial import cKDTree

    new_xy = np.asarray(new_xy, np.float64).reshape(-1, 2)
    new_labels = np.asarray(new_labels).reshape(-1)
    tree = cKDTree(new_xy) if len(new_xy) else None
    used: set[int] = set()
    plan = CarryPlan()

    def nearest(x, y) -> int | None:
        if tree is None:
            return None
        k = min(8, len(new_xy))
        dist, idx = tree.query([x, y], k=k, distance_upper_bound=radius_px)
        for d, i in zip(np.atleast_1d(dist), np.atleast_1d(idx)):
            if np.isfinite(d) and int(i) not in used:
                return int(i)
        return None

    def missed(source, op, x, y, label, why):
        plan.missed.append({"correction": source.pk if source is not None else None, "op": op,
                            "x": round(float(x), 1), "y": round(float(y), 1),
                            "label": LABEL_NAMES.get(label) if label is not None else None, "reason": why})

    far = f"no detection of the new run within {CARRY_RADIUS_UM:g} µm"
    for index in sorted(old_state.deleted):
        x, y = old_xy[index]
        source = sources.get(("d", index))
        match = nearest(x, y)
        if match is None:
            missed(source, CorrectionOp.DELETE, x, y, None, far)
            continue
        used.add(match)
        plan.ops.append({"op": CorrectionOp.DELETE, "detection": match, "source": source})
    def relabel(match, label, source):  # the new detection takes the pathologist's class
        used.add(match)
        if int(new_labels[match]) == label:
            plan.already += 1
        else:
            plan.ops.append({"op": CorrectionOp.RECLASSIFY, "detection": match, "label": label, "source": source})

    for index in sorted(old_state.relabelled):
        x, y = old_xy[index]
        label, source = old_state.relabelled[index], sources.get(("d", index))
        match = nearest(x, y)
        if match is None:
            missed(source, CorrectionOp.RECLASSIFY, x, y, label, far)
        else:
            relabel(match, label, source)
    for cid in sorted(old_state.added):
        x, y, label = old_state.added[cid]
        source = sources.get(("c", cid))
        match = nearest(x, y)
        if match is None:
            plan.ops.append({"op": CorrectionOp.ADD, "x": float(x), "y": float(y), "label": label, "source": source})
        else:
            relabel(match, label, source)
    return plan


def carry_message(report: dict) -> str:
    """The viewer's words for a carry report."""
    carried, missed = report["carried"], report["not_carried"]
    text = (f"{carried} correction{'s' if carried != 1 else ''} of the earlier analysis (job {report['from_job']}) "
            f"carried over to this one")
    if not missed:
        return text + "."
    where = "; ".join(f"{m['op']}{' to ' + m['label'] if m['label'] else ''} at ({m['x']:g}, {m['y']:g})"
                      for m in missed)
    return (f"{text}; {len(missed)} not carried ({report['reason']}), check these places and correct them "
            f"again if needed: {where}.")


def previous_done_job(job):
    from analysis.models import AnalysisJob

    return (AnalysisJob.objects.filter(slide_id=job.slide_id, status=JobStatus.DONE)
            .exclude(pk=job.pk).filter(created_at__lte=job.created_at).order_by("-created_at", "-pk").first())


def do_carry_over(job) -> dict | None:
    """Carry the previous run's corrections onto `job` (done) once; returns its carry report, or None
    when there was nothing to carry. Idempotent: a job whose report exists is left as it is, and the
    first call always stores one (empty when nothing was carried), so a later save of the job never
    carries the earlier run's corrections made since on top of this run's own."""
    from viewer.models import Correction, CorrectionSet, Region
    from viewer.stores import job_mpp, job_store

    done = CorrectionSet.objects.filter(job=job, carry_report__isnull=False).values_list("carry_report", flat=True)
    if done:
        return shown_report(done[0])
    previous = previous_done_job(job)
    old_rows = list(Correction.objects.filter(job=previous)) if previous is not None else []
    plan, radius_px = None, None
    if old_rows:
        old_state = fold_corrections(old_rows)
        old_store, new_store = job_store(previous), job_store(job)
        mpp = job_mpp(job, new_store) or FALLBACK_MPP
        radius_px = CARRY_RADIUS_UM / float(mpp)
        wanted = np.asarray(sorted(old_state.deleted | set(old_state.relabelled)), np.int64)
        old_xy = dict(zip(wanted.tolist(), old_store.take(wanted).xy.astype(np.float64).tolist()))
        everything = new_store.all()
        plan = plan_carry(old_xy, old_state, sources_of(old_rows), everything.xy, everything.labels, radius_px)

    CorrectionSet.objects.get_or_create(job=job)
    with transaction.atomic():
        correction_set = CorrectionSet.objects.select_for_update(of=("self",)).get(job=job)
        if correction_set.carry_report is not None:
            return shown_report(correction_set.carry_report)
        now = timezone.now()
        for op in plan.ops if plan is not None else []:
            source = op.pop("source")
            version = correction_set.bump(None, now)
            Correction.objects.create(job=job, version=version, author_id=source.author_id, carried_from=source,
                                      **op)
        # The slide's regions change this run's scores too, also when no point correction was carried:
        # its version then says "corrected" (case page, report) as its counts do.
        if Region.objects.filter(slide_id=job.slide_id, deleted_at__isnull=True).exists():
            correction_set.bump(None, now)
        if plan is None:
            report = {"from_job": previous.pk if previous is not None else None, "carried": 0, "saved": 0,
                      "already_so": 0, "not_carried": [], "nothing": True, "message": ""}
        else:
            report = {"from_job": previous.pk, "radius_um": CARRY_RADIUS_UM, "radius_px": round(radius_px, 2),
                      "carried": len(plan.ops) + plan.already, "saved": len(plan.ops), "already_so": plan.already,
                      "not_carried": plan.missed, "reason": f"no detection of this analysis within "
                                                            f"{CARRY_RADIUS_UM:g} µm of where they were made"}
            report["message"] = carry_message(report)
            correction_set.carried_from = previous
        correction_set.carry_report = report
        correction_set.save()
    return shown_report(report)


def shown_report(report: dict | None) -> dict | None:
    """The carry report as the viewer and callers see it: None when the earlier run had nothing to carry."""
    return None if report is None or report.get("nothing") else report


def carry_after_commit(job_id: int) -> None:
    """Run by the job-done hook after the merge commits; a failure is logged, never fails the job."""
    from analysis.models import AnalysisJob

    try:
        job = AnalysisJob.objects.select_related("slide").get(pk=job_id)
        if job.status == JobStatus.DONE:
            do_carry_over(job)
    except Exception:  # noqa: BLE001  the job's result stands; the viewer says nothing was carried
        log.exception("carrying corrections over to job %s failed", job_id)


def on_job_saved(sender, instance, created=False, **kwargs) -> None:
    """post_save of AnalysisJob: when a job is done, carry the previous run's corrections after commit."""
    if instance.status == JobStatus.DONE and instance.result_file:
        job_id = instance.pk
        transaction.on_commit(lambda: carry_after_commit(job_id))
