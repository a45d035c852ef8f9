"""Corrections carried over to a re-run of the analysis (issue 18, item 5).

A new run of a slide finds its own detections, at slightly different places and with new store
indices, so the pathologist's corrections of the earlier run cannot be applied as they are. When a
job is done, the earlier run's detections (all of them, with the cells the pathologist added) are
matched one-to-one to the new run's detections by position, within CARRY_RADIUS_UM (level-0 px from
the slide's pixel size), as many pairs as possible and the closest in total (match_runs), and the
active corrections of the slide's previous done job follow that match:

* a deleted detection: the new detection matched to it is deleted;
* a reclassified detection: the new detection matched to it is given the pathologist's class
  (nothing to save when the new run already says so);
* an added cell: a new detection matched to it is that cell (reclassified when its class differs);
  otherwise the cell is added again at the same place.

A correction goes only to the new detection matched to the corrected one, never to a neighbour that
is another cell: a nucleus the earlier run found twice, whose duplicate the pathologist deleted, is
found once by the new run and matched to the detection that was kept, so the delete is not carried
(the real cell stays). A delete or reclassify whose detection has no match is not carried: the job's
CorrectionSet.carry_report lists each one (where, what, why) with a message for the viewer. Regions
belong to the slide and need no carrying. Signed reports keep their stored documents
(cases.documents) whatever happens here.
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


MATCHED_ELSEWHERE = ("the new run's detections within {r:g} µm are matched to other detections of the earlier run "
                     "(each cell once): this one has no counterpart in the new run, e.g. a duplicate it did not find")
HUNGARIAN_MAX = 2000  # a cluster of more old or new points than this is matched greedily, nearest pairs first


def match_runs(old_xy, new_xy, radius_px: float, seeds) -> tuple[dict[int, int], set[int]]:
    """One-to-one match of the earlier run's points (old_xy, all of them) to the new run's detections
    within radius_px, for the clusters of points around `seeds` (old indices).

    Two detections of one run a few µm apart (a nucleus found twice) and one detection of the other run
    near both are not both that detection: each new detection is matched to one old point at most, and
    each old point to one new detection, as many pairs as possible and the closest overall (Hungarian
    assignment, scipy.optimize.linear_sum_assignment, within each cluster of points linked by pairs
    within the radius). Returns ({old index: new index} for the seeds' clusters, the seeds that had a new
    detection within the radius at all)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    old_xy = np.asarray(old_xy, np.float64).reshape(-1, 2)
    new_xy = np.asarray(new_xy, np.float64).reshape(-1, 2)
    seeds = sorted({int(s) for s in seeds})
    if not len(new_xy) or not seeds:
        return {}, set()
    old_tree, new_tree = cKDTree(old_xy), cKDTree(new_xy)
    # The clusters the seeds belong to: old and new points linked through pairs within the radius.
    seen_old, seen_new, frontier = set(seeds), set(), seeds
    while frontier:
        hits = {j for row in new_tree.query_ball_point(old_xy[frontier], radius_px) for j in row} - seen_new
        seen_new |= hits
        if not hits:
            break
        back = {i for row in old_tree.query_ball_point(new_xy[sorted(hits)], radius_px) for i in row} - seen_old
        seen_old |= back
        frontier = sorted(back)
    olds, news = sorted(seen_old), sorted(seen_new)
    near = {s for s, row in zip(seeds, new_tree.query_ball_point(old_xy[seeds], radius_px)) if row}
    if not news:
        return {}, near
    new_at = {j: k for k, j in enumerate(news)}
    rows, cols, dist = [], [], []
    for a, (i, row) in enumerate(zip(olds, new_tree.query_ball_point(old_xy[olds], radius_px))):
        for j in row:
            rows.append(a)
            cols.append(new_at[j])
            dist.append(float(np.hypot(*(old_xy[i] - new_xy[j]))))
    rows, cols, dist = np.asarray(rows, np.int64), np.asarray(cols, np.int64), np.asarray(dist)
    n_old = len(olds)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols + n_old)), shape=(n_old + len(news),) * 2)
    _, component = connected_components(graph, directed=False)
    matched: dict[int, int] = {}
    edge_component = component[rows]
    for c in np.unique(edge_component):
        pick = edge_component == c
        r, k, d = rows[pick], cols[pick], dist[pick]
        ur, ri = np.unique(r, return_inverse=True)
        uk, ki = np.unique(k, return_inverse=True)
        if max(len(ur), len(uk)) <= HUNGARIAN_MAX:
            # Pairs beyond the radius cost more than all pairs within it together: as many real pairs as
            # possible first, then the shortest in total.
            beyond = radius_px * (min(len(ur), len(uk)) + 1) + 1.0
            cost = np.full((len(ur), len(uk)), beyond)
            cost[ri, ki] = d
            a, b = linear_sum_assignment(cost)
            pairs = [(ur[x], uk[y]) for x, y in zip(a, b) if cost[x, y] < beyond]
        else:
            taken_r, taken_k, pairs = set(), set(), []
            for e in np.argsort(d, kind="stable"):
                if r[e] not in taken_r and k[e] not in taken_k:
                    taken_r.add(r[e])
                    taken_k.add(k[e])
                    pairs.append((r[e], k[e]))
        for x, y in pairs:
            matched[olds[int(x)]] = news[int(y)]
    return matched, near


def plan_carry(old_xy, old_state: CorrectionState, sources: dict, new_xy, new_labels, radius_px: float) -> CarryPlan:
    """Match the old run's corrections to the new run's detections.

    old_xy: every detection of the old run, (x, y) by store index (not only the corrected ones: a
    correction is carried only to the new detection matched one-to-one to the corrected detection, see
    match_runs). The cells the pathologist added are matched with them, as points of the old run."""
    old_xy = np.asarray(old_xy, np.float64).reshape(-1, 2)
    new_labels = np.asarray(new_labels).reshape(-1)
    added = sorted(old_state.added)
    added_at = {cid: len(old_xy) + k for k, cid in enumerate(added)}
    points = np.vstack([old_xy, np.asarray([old_state.added[c][:2] for c in added], np.float64).reshape(-1, 2)])
    seeds = sorted(old_state.deleted | set(old_state.relabelled)) + list(added_at.values())
    matched, near = match_runs(points, new_xy, radius_px, seeds)
    plan = CarryPlan()

    def missed(source, op, at, label):
        x, y = points[at]
        why = MATCHED_ELSEWHERE.format(r=CARRY_RADIUS_UM) if at in near else \
            f"no detection of the new run within {CARRY_RADIUS_UM:g} µm"
        plan.missed.append({"correction": source.pk if source is not None else None, "op": op,
                            "x": round(float(x), 1), "y": round(float(y), 1),
                            "label": LABEL_NAMES.get(label) if label is not None else None, "reason": why})

    for index in sorted(old_state.deleted):
        source = sources.get(("d", index))
        if index not in matched:
            missed(source, CorrectionOp.DELETE, index, None)
        else:
            plan.ops.append({"op": CorrectionOp.DELETE, "detection": matched[index], "source": source})

    def relabel(match, label, source):  # the new detection takes the pathologist's class
        if int(new_labels[match]) == label:
            plan.already += 1
        else:
            plan.ops.append({"op": CorrectionOp.RECLASSIFY, "detection": match, "label": label, "source": source})

    for index in sorted(old_state.relabelled):
        label, source = old_state.relabelled[index], sources.get(("d", index))
        if index not in matched:
            missed(source, CorrectionOp.RECLASSIFY, index, label)
        else:
            relabel(matched[index], label, source)
    for cid in added:
        x, y, label = old_state.added[cid]
        source = sources.get(("c", cid))
        if added_at[cid] in matched:
            relabel(matched[added_at[cid]], label, source)
        else:  # no new detection is this cell: it is added again (a cell near other cells' detections too)
            plan.ops.append({"op": CorrectionOp.ADD, "x": float(x), "y": float(y), "label": label, "source": source})
    return plan


def carry_reason(missed: list[dict]) -> str:
    """The report's one reason for what was not carried (the viewer's message words it)."""
    far = f"no detection of the new run within {CARRY_RADIUS_UM:g} µm"
    reasons = {m["reason"] for m in missed}
    if reasons <= {far}:
        return f"no detection of this analysis within {CARRY_RADIUS_UM:g} µm of where they were made"
    if reasons == {MATCHED_ELSEWHERE.format(r=CARRY_RADIUS_UM)}:
        return (f"the detections of this analysis within {CARRY_RADIUS_UM:g} µm of where they were made are other "
                f"cells of the earlier analysis")
    return "see each place"


def carry_message(report: dict) -> str:
    """The viewer's words for a carry report."""
    carried, missed = report["carried"], report["not_carried"]
    text = (f"{carried} correction{'s' if carried != 1 else ''} of the earlier analysis (job {report['from_job']}) "
            f"carried over to this one")
    if not missed:
        return text + "."
    where = "; ".join(f"{m['op']}{' to ' + m['label'] if m['label'] else ''} at ({m['x']:g}, {m['y']:g})"
                      for m in missed)
    reasons = {m["reason"] for m in missed}
    if len(reasons) > 1:  # each place with its own reason
        where = "; ".join(f"{m['op']}{' to ' + m['label'] if m['label'] else ''} at ({m['x']:g}, {m['y']:g}): "
                          f"{m['reason']}" for m in missed)
        return f"{text}; {len(missed)} not carried, check these places and correct them again if needed: {where}."
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
        everything = new_store.all()
        plan = plan_carry(old_store.all().xy, old_state, sources_of(old_rows), everything.xy, everything.labels,
                          radius_px)

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
                      "not_carried": plan.missed, "reason": carry_reason(plan.missed)}
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
