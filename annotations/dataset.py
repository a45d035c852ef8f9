"""Export accepted annotation sessions as a training dataset folder (analysis.datasets "folder:PATH").

Layout (exactly what analysis.datasets.folder_samples reads)::

    OUT/manifest.json
    OUT/images/<id>.png           the field resampled to the training mpp
    OUT/points/<id>.csv           x,y,label in pixels of that image (pixel centres at integers)
    OUT/points/<id>-ignore.csv    x,y,ignore: nuclei the annotators did not agree on (only when there are any)

One entry per field (field_label_sets).  A field one annotator labelled gives that session's
points.  A field several annotators labelled gives their consensus (review.consensus of the
accepted sets, matched within CONSENSUS_RADIUS_UM): a nucleus found by a majority with a majority
label is a point; one found by too few annotators, or whose labels tie, is an ignore point, never
a positive or a negative.  One entry per session taught the same nucleus as positive in one sample
and negative in another, and a nucleus only one annotator found as background in the others'.

Only the training labels (positive, negative) go into the points CSV; every label is counted in
the manifest.  Extra manifest keys (slide pseudo id, region, the contributing sessions and their
versions, counts) are ignored by the reader; ``ignore_points`` (nuclei of uncertain label) is read by
analysis.datasets.folder_samples, and db_samples gives them, as Sample.uncertain_xy: never a
non-tumour target in training, an ignore zone in the metrics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import numpy as np

from analysis.datasets import UNCERTAIN_LABEL
from annotations import formats, review
from annotations.choices import TRAINING_LABELS, SessionStatus
from annotations.models import AnnotationSession

DATASET_FORMAT, DATASET_VERSION = "pdl1-point-dataset", 1
CONSENSUS_RADIUS_UM = 4.0  # as services.DEFAULT_RADIUS_UM and analysis.matching.evaluate
IGNORE_LABEL = UNCERTAIN_LABEL  # one word for readers and writers (analysis.datasets)

logger = logging.getLogger(__name__)


def split_by_slide(slide_keys, val: float = 0.15, test: float = 0.15, seed: int = 0) -> dict[str, str]:
    """Deterministic train/val/test per slide (pure): fields of one slide never straddle splits.

    A slide's split follows from its own hash alone (test below `test`, val below `test + val`), so
    accepting more slides never moves one: a split by rank in the hash order did, and a slide an earlier
    model trained on became a later model's validation slide. When no slide would be left to train on
    (a handful of slides), all are train: nothing is held out then, and those slides may move to val or
    test once others arrive (a model trained on them has no held-out fields to be promoted on)."""
    keys = set(slide_keys)
    out = {k: _split_of(k, val, test, seed) for k in keys}
    if keys and "train" not in out.values():
        return dict.fromkeys(keys, "train")
    return out


def _split_of(key, val: float, test: float, seed: int) -> str:
    u = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:16], 16) / 16**16  # uniform in [0, 1)
    return "test" if u < test else "val" if u < test + val else "train"


def split_groups(slides) -> dict[int, str]:
    """Slide pk -> the key its split is drawn by: slides of one file (the same sha256, e.g. uploaded in two
    departments) or of one patient share a key, so the same tissue never lands in train and val (a model
    would be scored on what it trained on). The key is the pseudo id of the earliest slide (lowest pk) of the
    group's patients and files in the whole database, not only among these slides: a slide accepted later
    (a higher pk) never changes it, so it never moves a group between splits. Nothing of the patient is
    written."""
    from django.db.models import Q

    from cases.models import Slide
    parent: dict[int, int] = {}

    def root(pk):
        while parent[pk] != pk:
            parent[pk] = parent[parent[pk]]
            pk = parent[pk]
        return pk

    slides = {slide.pk: slide for slide in slides}
    first_by: dict[tuple, int] = {}
    for pk, slide in sorted(slides.items()):
        parent.setdefault(pk, pk)
        patient = slide.case.patient_id if slide.case_id else None
        for key in (("file", slide.sha256), ("patient", patient)):
            if key[1] is None:
                continue
            if key in first_by:
                parent[root(pk)] = root(first_by[key])
            else:
                first_by[key] = pk
    members: dict[int, list] = {}
    for pk in slides:
        members.setdefault(root(pk), []).append(slides[pk])
    keys = {}
    for group_root, group in members.items():
        patients = {s.case.patient_id for s in group if s.case_id}
        files = {s.sha256 for s in group if s.sha256}
        earliest = Slide.objects.filter(Q(case__patient_id__in=patients) | Q(sha256__in=files)).order_by("pk").first()
        keys[group_root] = str((earliest or min(group, key=lambda s: s.pk)).pseudo_id)
    return {pk: keys[root(pk)] for pk in slides}


def field_to_image_points(points, x0: int, y0: int, scale, out_w: int, out_h: int, labels=TRAINING_LABELS):
    """Level-0 slide points -> pixels of the resampled crop (pure; pixel-centre convention).  `scale` is
    output px per level-0 px, one number or (x, y): the rounded output size makes them differ.  Points
    with a label outside `labels` are left out."""
    sx, sy = (scale, scale) if np.isscalar(scale) else scale
    rows = []
    for x, y, label in points:
        if label not in labels:
            continue
        u = (x - x0 + 0.5) * sx - 0.5
        v = (y - y0 + 0.5) * sy - 0.5
        # Callers refuse points outside the field (points_outside): this only keeps a point on the field's last
        # pixel off the image's outer edge after float rounding, never moves a point from elsewhere onto it.
        u = min(max(u, -0.5), out_w - 0.5 - 1e-3)
        v = min(max(v, -0.5), out_h - 0.5 - 1e-3)
        rows.append((round(u, 3), round(v, 3), label))
    return rows


def read_field_rgb(slide, field, mpp: float) -> tuple[np.ndarray, tuple[float, float]]:
    """The field as RGB uint8 at `mpp` µm/px, and the scale per axis (output px per level-0 px).  The
    image covers exactly the field's level-0 rectangle in both axes (the level read is cropped to it)."""
    from PIL import Image

    from analysis.tiling import choose_level
    from slideio.slidefile import open_slide

    scale = slide.mpp_x / mpp
    out_w, out_h = max(int(round(field.width * scale)), 1), max(int(round(field.height * scale)), 1)
    handle = open_slide(slide.path)
    try:
        level, _ = choose_level(handle.level_downsamples, slide.mpp_x, mpp)
        ds = float(handle.level_downsamples[level])
        region = handle.read_region((field.x, field.y), level,
                                    (max(int(math.ceil(field.width / ds)), 1), max(int(math.ceil(field.height / ds)), 1)))
    finally:
        handle.close()
    region = region.convert("RGBA")
    white = Image.new("RGBA", region.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, region).convert("RGB")
    # The level read covers ceil(w / ds) level pixels, up to ds - 1 level-0 pixels more than the field:
    # resample only the field's own extent (box, in level pixels), so both axes map level-0 to output.
    box = (0.0, 0.0, field.width / ds, field.height / ds)
    if rgb.size != (out_w, out_h) or box[2:] != rgb.size:
        rgb = rgb.resize((out_w, out_h), Image.BILINEAR, box=box)
    return np.asarray(rgb), (out_w / field.width, out_h / field.height)


def marker_matched(sessions) -> tuple[list, list[dict]]:
    """(kept, left_out): a session on a slide stained for another marker than its project's is left out.
    Such a field (made before do_create_field checked the slide) would train as the project's marker: a
    Ki-67 nucleus as a PD-L1 positive tumour cell. left_out: {"session", "field", "slide", "reason"}."""
    kept, left_out = [], []
    for s in sessions:
        slide, project = s.field.slide, s.field.project
        if slide.marker == project.marker:
            kept.append(s)
        else:
            left_out.append({"session": s.pk, "field": s.field_id, "slide": str(slide.pseudo_id),
                             "reason": f"the slide is stained for {slide.marker}, project {project.name!r} "
                                       f"annotates {project.marker}"})
    return kept, left_out


def points_outside(session) -> list[str]:
    """Each point of the session outside its field, as a problem: an error of the export and db:MARKER (it was
    clamped onto the field's corner: a nucleus trained where there is none)."""
    f = session.field
    return [f"session {session.pk}: point {n} ({x}, {y}) is outside field {f.pk} [{f.x}, {f.x + f.width}) x "
            f"[{f.y}, {f.y + f.height}); return the session to its annotator"
            for n, (x, y, _) in enumerate(session.points) if not f.contains(x, y)]


def field_label_sets(sessions) -> list[dict]:
    """One labelled set per field of the (accepted) `sessions`, fields in pk order (pure over the rows given).

    {"field", "sessions" (by annotator name), "id", "points" [[x, y, label]] (level-0), "ignore" [[x, y]],
    "consensus" (None for one session; else its radius, votes needed and counts)}.  Several sessions of one
    field give review.consensus of exactly those sets: the points a majority found with a majority label;
    the rest (too few finders, tied labels) are ignore points (Sample.uncertain_xy), so no nucleus is taught
    as two classes.  Training masks them out: a disc of background_radius_um around each is an ignore zone
    for every loss term (analysis.training_batches.draw_batch), never background.  The id of a one-session field stays field-N-session-M (as before), so
    a model card's held-out field names still match until a second annotator is accepted on the field."""
    by_field: dict[int, list] = {}
    for s in sessions:
        by_field.setdefault(s.field_id, []).append(s)
    out = []
    for field_id in sorted(by_field):
        group = sorted(by_field[field_id], key=lambda s: (s.annotator.username, s.pk))
        field = group[0].field
        if len(group) == 1:
            out.append({"field": field, "sessions": group, "id": f"field-{field.pk}-session-{group[0].pk}",
                        "points": group[0].points, "ignore": [], "consensus": None})
            continue
        radius_px = CONSENSUS_RADIUS_UM / field.slide.mpp_x
        agreed = review.consensus({s.annotator.username: s.points for s in group}, radius_px)
        ignore = [[u["x"], u["y"]] for u in (*agreed["uncertain"], *agreed["unconfirmed"])]
        out.append({"field": field, "sessions": group, "id": f"field-{field.pk}-consensus",
                    "points": agreed["points"], "ignore": ignore, "consensus": {
                        "radius_um": CONSENSUS_RADIUS_UM, "min_votes": agreed["min_votes"],
                        "annotators": len(group), "uncertain": len(agreed["uncertain"]),
                        "unconfirmed": len(agreed["unconfirmed"])}})
    return out


def _counts(points) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, _, label in points:
        out[label] = out.get(label, 0) + 1
    return out


def _provenance(label_set) -> dict:
    """The manifest's / sample meta's record of who and which saved version made a field's labels."""
    group = label_set["sessions"]
    single = group[0] if len(group) == 1 else None
    return {
        "annotator": single.annotator.username if single else None,
        "session": single.pk if single else None, "version": single.version if single else None,
        "sessions": [{"session": s.pk, "annotator": s.annotator.username, "version": s.version} for s in group],
        "consensus": label_set["consensus"],
    }


def do_export_dataset(sessions, out_dir, mpp: float = 0.5, name: str = "", licence: str = "internal",
                      val: float = 0.15, test: float = 0.15, seed: int = 0) -> dict:
    """Write the accepted sessions as a dataset folder; returns the manifest.

    Raises AnnotationError (listing offenders) before writing anything when a session is not
    accepted, a slide has no mpp, the sessions are of more than one marker, or the folder already
    holds a manifest.  The manifest names the marker.
    """
    from PIL import Image

    from annotations.services import AnnotationError

    sessions = list(sessions.select_related("field__slide__case", "field__project", "annotator")
                    if hasattr(sessions, "select_related") else sessions)
    out = Path(out_dir)
    problems = []
    sessions, left_out = marker_matched(sessions)
    if not sessions:
        problems.append("no sessions to export" + (f" ({len(left_out)} left out: on a slide of another marker "
                                                   f"than the project's)" if left_out else ""))
    if (out / "manifest.json").exists():
        problems.append(f"{out} already holds a dataset (manifest.json): choose a new folder")
    for s in sessions:
        if s.status != SessionStatus.ACCEPTED:
            problems.append(f"session {s.pk}: is {s.status}, only accepted sessions are exported")
        if not s.field.slide.mpp_x:
            problems.append(f"session {s.pk}: slide {s.field.slide.pseudo_id} has no resolution (mpp)")
        problems += points_outside(s)
    # One marker per dataset: "positive" is a stained membrane in PD-L1 and a stained nucleus in Ki-67, and a
    # folder source carries no marker per field, so a mixed folder would teach one class two meanings.
    markers = sorted({s.field.project.marker for s in sessions})
    if len(markers) > 1:
        problems.append(f"the sessions are of projects of {len(markers)} markers ({', '.join(markers)}): a dataset "
                        f"holds one marker's annotations, export each marker (or project) on its own")
    if not (isinstance(mpp, (int, float)) and 0.05 <= mpp <= 20):
        problems.append(f"mpp must be in [0.05, 20], got {mpp!r}")
    if problems:
        raise AnnotationError("dataset not exported", problems)

    group = split_groups({s.field.slide for s in sessions})
    splits = split_by_slide([group[s.field.slide.pk] for s in sessions], val, test, seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "points").mkdir(parents=True, exist_ok=True)
    entries = []
    for label_set in field_label_sets(sessions):
        f, slide = label_set["field"], label_set["field"].slide
        rgb, scale = read_field_rgb(slide, f, mpp)
        image_rel = f"images/field-{f.pk}.png"
        Image.fromarray(rgb).save(out / image_rel)
        w, h = rgb.shape[1], rgb.shape[0]
        entry_id = label_set["id"]
        points_rel = f"points/{entry_id}.csv"
        rows = field_to_image_points(label_set["points"], f.x, f.y, scale, w, h)
        (out / points_rel).write_text(formats.to_csv(rows), encoding="utf-8")
        entry = {
            "id": entry_id, "image": image_rel, "points": points_rel, "mpp": float(mpp),
            "split": splits[group[slide.pk]],
            "slide": str(slide.pseudo_id), "region": f.region, "slide_mpp": slide.mpp_x,
            "project": f.project.name, **_provenance(label_set), "counts": _counts(label_set["points"]),
        }
        if label_set["ignore"]:
            ignore_rows = field_to_image_points([[x, y, IGNORE_LABEL] for x, y in label_set["ignore"]], f.x, f.y,
                                                scale, w, h, labels=(IGNORE_LABEL,))
            entry["ignore_points"] = f"points/{entry_id}-ignore.csv"
            (out / entry["ignore_points"]).write_text(formats.to_csv(ignore_rows), encoding="utf-8")
            entry["counts"][IGNORE_LABEL] = len(ignore_rows)
        entries.append(entry)
    manifest = {"format": DATASET_FORMAT, "version": DATASET_VERSION, "name": name or "annotation-export",
                "synthetic": False, "licence": licence, "mpp": float(mpp), "marker": markers[0], "fields": entries,
                "left_out": left_out}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def accepted_sessions(project=None):
    qs = AnnotationSession.objects.filter(status=SessionStatus.ACCEPTED)
    return qs.filter(field__project=project) if project is not None else qs


def db_samples(marker: str | None = None, sessions=None) -> list:
    """Accepted sessions of the projects stained for `marker` as analysis.datasets.Sample objects at each
    slide's own mpp (in memory).

    The "db:MARKER" source of analysis.datasets (train_detector --source db:PD-L1); splits are drawn
    per slide as in the export.  Without a marker, `sessions` must be given (one project's).
    """
    from analysis.datasets import DatasetError, Sample
    from analysis.labels import LABEL_CODES

    if sessions is None:
        if not marker:
            raise ValueError("db_samples needs the projects' marker: PD-L1 and Ki-67 points mean different things")
        sessions = accepted_sessions().filter(field__project__marker=marker)
    sessions = list(sessions
                    .select_related("field__slide__case", "field__project", "annotator"))
    sessions = [s for s in sessions if s.status == SessionStatus.ACCEPTED and s.field.slide.mpp_x]
    sessions, left_out = marker_matched(sessions)
    outside = [problem for s in sessions for problem in points_outside(s)]
    if outside:  # training stops, saying where: the caller reads DatasetError
        raise DatasetError(f"db:{marker or 'sessions'}: {len(outside)} accepted point(s) outside their field:\n  - "
                           + "\n  - ".join(outside[:formats.MAX_LISTED]))
    if left_out:  # the loader's caller (train_detector) gets samples only: the log says what was skipped
        logger.warning("db samples: %d accepted session(s) left out: %s", len(left_out),
                       "; ".join(f"session {e['session']} (field {e['field']}): {e['reason']}" for e in left_out))
    group = split_groups({s.field.slide for s in sessions})
    splits = split_by_slide([group[s.field.slide.pk] for s in sessions])
    out = []
    for label_set in field_label_sets(sessions):  # one sample per field, as the export
        f, slide = label_set["field"], label_set["field"].slide
        rgb, scale = read_field_rgb(slide, f, slide.mpp_x)
        rows = field_to_image_points(label_set["points"], f.x, f.y, scale, rgb.shape[1], rgb.shape[0])
        xy = np.asarray([[u, v] for u, v, _ in rows], np.float64).reshape(-1, 2)
        labels = np.asarray([LABEL_CODES[lab] for _, _, lab in rows], np.int64)
        ignore = field_to_image_points([[x, y, IGNORE_LABEL] for x, y in label_set["ignore"]], f.x, f.y, scale,
                                       rgb.shape[1], rgb.shape[0], labels=(IGNORE_LABEL,))
        uncertain_xy = np.asarray([[u, v] for u, v, _ in ignore], np.float64).reshape(-1, 2)
        out.append(Sample(rgb, xy, labels, float(slide.mpp_x), f"db:{f.project.marker}", label_set["id"],
                          splits[group[slide.pk]], False, "internal",
                          {"slide": str(slide.pseudo_id), "region": f.region, "project": f.project.name,
                           "marker": f.project.marker, **_provenance(label_set)}, uncertain_xy=uncertain_xy))
    return out


def do_export_project_dataset(project, mpp: float = 0.5):
    """Export the project's accepted sessions to a new folder under MEDIA_ROOT/datasets/.

    Returns (folder, manifest). Web answers name the folder only (`folder.name`, see
    dataset_folder): a server path tells a client how the server is laid out."""
    import tempfile

    from django.conf import settings
    from django.utils import timezone

    import shutil

    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    parent = Path(settings.MEDIA_ROOT) / "datasets"
    parent.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f"project-{project.pk}-{stamp}-", dir=parent))
    try:
        return out, do_export_dataset(accepted_sessions(project), out, mpp=mpp, name=project.name)
    except BaseException:  # a refused or failed export leaves no folder behind
        shutil.rmtree(out, ignore_errors=True)
        raise


def dataset_folder(name: str) -> Path:
    """The folder of an exported dataset from the name the API gave (MEDIA_ROOT/datasets/<name>)."""
    from django.conf import settings

    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"{name!r} is not a dataset name")
    return Path(settings.MEDIA_ROOT) / "datasets" / name


def check_training_request(name, steps, backbone) -> tuple[str, int, str]:
    from django.utils.text import slugify

    from analysis.choices import CLASSIC_DETECTOR
    from analysis.models import ModelVersion
    from analysis.nets import BACKBONES
    from workers.training import unfinished_run_named

    MODEL_NAME_MAX = ModelVersion._meta.get_field("name").max_length

    problems = []
    if not name or slugify(str(name)) != str(name):
        problems.append(f"name {name!r}: give a slug such as lung-pdl1-v2")
    elif len(str(name)) > MODEL_NAME_MAX:
        problems.append(f"name {name!r}: at most {MODEL_NAME_MAX} characters")
    elif name == CLASSIC_DETECTOR:
        problems.append(f"name {name!r}: reserved for the classic detector")
    elif ModelVersion.objects.filter(name=name).exists():
        problems.append(f"name {name!r}: a model with this name is already registered")
    elif unfinished_run_named(name):
        problems.append(f"name {name!r}: a training run with this name is queued or running")
    try:
        steps = int(steps)
        if not 1 <= steps <= 200_000:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"steps {steps!r}: a whole number from 1 to 200000")
    if backbone not in BACKBONES:
        problems.append(f"backbone {backbone!r}: one of {', '.join(BACKBONES)}")
    if problems:
        from annotations.services import AnnotationError

        raise AnnotationError("cannot start training", problems)
    return name, steps, backbone


def do_queue_training(project, name, steps=500, backbone="resnet18", mpp: float = 0.5, user=None) -> dict:
    """Export the accepted fields, then queue a training run on the training queue
    (workers.training.do_queue_training: its own worker, progress, cancel)."""
    from annotations.services import AnnotationError
    from workers.training import do_queue_training as queue_run

    from workers.training import TrainingError

    name, steps, backbone = check_training_request(name, steps, backbone)
    if not accepted_sessions(project).exists():
        raise AnnotationError("cannot start training", ["the project has no accepted fields yet"])
    folder, manifest = do_export_project_dataset(project, mpp)
    try:
        run = queue_run(group=training_group(project), dataset=str(folder), name=name, steps=steps,
                        backbone=backbone, mpp=mpp, user=user)
    except TrainingError as exc:  # a second click (or colleague) while the first was exporting
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        raise AnnotationError("cannot start training", [str(exc)]) from None
    run.refresh_from_db()
    return {"run": run.pk, "task": run.task_id, "model_name": name, "dataset": folder.name,
            # .get: a manifest from before left_out (or a stand-in export) has none
            "fields": len(manifest["fields"]), "left_out": len(manifest.get("left_out", ())), "steps": steps,
            "backbone": backbone}


def training_group(project) -> str:
    """The group of a project's training runs (listed on the project page)."""
    return f"annotation-project-{project.pk}-training"


def training_runs(project, limit: int = 20):
    """The project's training runs, newest first: progress, state and the registered model version."""
    from workers.training import runs_of

    return runs_of(training_group(project))[:limit]


def training_run(project, run_id):
    """One training run of the project, or None."""
    from workers.training import runs_of

    return runs_of(training_group(project)).filter(pk=run_id).first()
