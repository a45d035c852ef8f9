"""The soak's invariants (issue 19 item 3), checked after the run in the platform's own environment:

    python bench/soak_verify.py SEED_JSON ACKS_JSON      (DJANGO_SETTINGS_MODULE=pdl1site.settings)

reads what the server acknowledged during the soak and compares it with what the database and
MEDIA_ROOT hold now. Prints one JSON line prefixed VERIFY: {check: {"ok": bool, ...}}.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path


def canonical(points) -> str:
    return hashlib.sha256(json.dumps(points, sort_keys=True).encode()).hexdigest()


def store_digest(path: Path) -> str:
    """sha256 of every detection (x, y, label, score), in a fixed order: equal digests, equal results."""
    import numpy as np

    from analysis.detection_store import open_store

    with open_store(path) as store:
        pts = store.all()
        order = np.lexsort((pts.labels, pts.xy[:, 1], pts.xy[:, 0]))
        h = hashlib.sha256()
        for arr in (pts.xy[order], pts.labels[order], pts.scores[order]):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


def check_annotations(acks) -> dict:
    from annotations.models import AnnotationRevision, AnnotationSession

    missing, last = [], {}
    for a in acks:
        rev = AnnotationRevision.objects.filter(session_id=a["session"], version=a["version"]).first()
        pts = [{"x": x, "y": y, "label": label} for x, y, label in rev.points] if rev else None
        if rev is None or canonical(pts) != a["points_sha256"]:
            missing.append(a)
        if a["t"] >= last.get(a["session"], {"t": -1})["t"]:
            last[a["session"]] = a
    behind = [s for s, a in last.items() if AnnotationSession.objects.get(pk=s).version < a["version"]]
    return {"ok": not missing and not behind, "acknowledged": len(acks), "missing_or_changed": missing[:5],
            "sessions_behind_last_ack": behind}


def check_human_layer(acks, model_name: str) -> dict:
    from viewer import models

    model = getattr(models, model_name)
    missing = []
    for a in acks:
        row = model.objects.filter(pk=a["item"]["id"]).first()  # regions belong to a slide in newer trees
        if row is None or row.version != a["version"]:
            missing.append(a["item"]["id"])
    return {"ok": not missing, "acknowledged": len(acks), "missing": missing[:10]}


def check_uploads(acks, refused) -> dict:
    from django.conf import settings

    from cases.models import Slide

    problems = []
    for a in acks:
        slide = Slide.objects.filter(pk=a["slide"]).first()
        if slide is None:
            problems.append(f"slide {a['slide']} ({a['file']}) acknowledged but missing")
            continue
        stored = Path(slide.path)
        if not stored.exists() or hashlib.sha256(stored.read_bytes()).hexdigest() != slide.sha256:
            problems.append(f"slide {slide.pk}: stored file missing or changed")
        if hashlib.sha256(Path(a["file"]).read_bytes()).hexdigest() != slide.sha256:
            problems.append(f"slide {slide.pk}: not the uploaded file")
    refused_rows = []
    for r in refused:
        digest = hashlib.sha256(Path(r["file"]).read_bytes()).hexdigest()
        if Slide.objects.filter(sha256=digest).exists() and not any(a["file"] == r["file"] for a in acks):
            refused_rows.append(r["file"])
    media = Path(settings.MEDIA_ROOT)
    # Each stored slide is a folder slides/<sha[:2]>/<sha>-<random>/ (cases.services): one not named by
    # any slide row is what an interrupted ingest left behind.
    known = {Path(s.path).parent for s in Slide.objects.all()}
    folders = [p for p in media.glob("slides/*/*") if p.is_dir()]
    orphans = [str(p) for p in folders if p not in known]
    temp = [str(p) for p in (media / "tmp").rglob("*") if p.is_file()] if (media / "tmp").exists() else []
    return {"ok": not problems and not refused_rows and not orphans, "acknowledged": len(acks),
            "refused": len(refused), "problems": problems[:10], "refused_but_stored": refused_rows,
            "orphan_slide_files": orphans[:10], "leftover_upload_temp_files": temp[:10]}


def check_reports(acks, downloads) -> dict:
    from cases.models import ReportDocument

    problems = []
    signed = {}
    for a in acks:
        signed[a["report"]] = a["document_sha256"]
        for kind, sha in a["document_sha256"].items():
            doc = ReportDocument.objects.filter(report_id=a["report"], kind=kind).first()
            if doc is None or doc.sha256 != sha or hashlib.sha256(bytes(doc.content)).hexdigest() != sha:
                problems.append(f"report {a['report']} {kind}: stored document differs from the one signed")
    changed = [d for d in downloads if d["sha256"] != d["header"]
               or (signed.get(d["report"], {}).get(d["kind"]) not in (None, d["sha256"]))]
    return {"ok": not problems and not changed and bool(acks), "signed": len(acks), "downloads": len(downloads),
            "problems": problems[:10], "downloads_differing": changed[:5]}


def check_jobs(acks, reference_job: int) -> dict:
    from django.conf import settings

    from analysis.models import AnalysisJob

    media = Path(settings.MEDIA_ROOT)
    ref = AnalysisJob.objects.get(pk=reference_job)
    ref_digest = store_digest(media / ref.result_file)
    rows = []
    for a in acks:
        job = AnalysisJob.objects.get(pk=a["job"])
        row = {"job": job.pk, "status": job.status, "retries": a["retries"], "error": job.error[:600]}
        if job.status == "done":
            row["identical"] = (store_digest(media / job.result_file) == ref_digest
                                and job.summary.get("counts") == ref.summary.get("counts"))
        rows.append(row)
    return {"ok": bool(rows) and all(r.get("identical") for r in rows), "jobs": rows,
            "reference": {"job": ref.pk, "counts": ref.summary.get("counts"), "digest": ref_digest[:16]}}


def check_training(acks) -> dict:
    from django_q.models import Task

    from analysis.models import ModelVersion

    rows = []
    for a in acks:
        task = Task.objects.filter(id=a["task"]).first()
        rows.append({"name": a["name"], "task_finished": task is not None, "success": bool(task and task.success),
                     "registered": ModelVersion.objects.filter(name=a["name"]).exists(),
                     "error": (str(task.result)[-300:] if task is not None and not task.success else None)})
    return {"ok": bool(rows) and all(r["registered"] for r in rows), "runs": rows}


def verify(seed: dict, acks: dict) -> dict:
    return {
        "annotation_saves": check_annotations(acks["annotations"]),
        "corrections": check_human_layer(acks["corrections"], "Correction"),
        "regions": check_human_layer(acks["regions"], "Region"),
        "uploads": check_uploads(acks["uploads"], acks["refused_uploads"]),
        "signed_reports": check_reports(acks["reports"], acks["downloads"]),
        "jobs": check_jobs(acks["jobs"], seed["reference_job"]),
        "training": check_training(acks["training"]),
    }


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())  # the source tree under test (the checkout, or a snapshot of it)
    import django

    django.setup()
    seed_data = json.loads(Path(sys.argv[1]).read_text())
    acks_data = json.loads(Path(sys.argv[2]).read_text())
    print("VERIFY " + json.dumps(verify(seed_data, acks_data), default=str), flush=True)
