"""Annotation work: projects, fields, point sessions, review, import/export, training datasets.

check_* functions validate and raise AnnotationError listing every offender (nothing is
changed); do_* functions change the database.  Geometry is in level-0 slide pixels.
"""

from __future__ import annotations

import math

import numpy as np
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from annotations import formats, review
from annotations.choices import EDITABLE_STATUSES, FieldSource, SessionStatus
from annotations.models import (AnnotationProject, AnnotationRevision, AnnotationSession, Field, TransitionError,
                                default_labels)
from cases import access
from cases.choices import Role
from cases.services import pseudonymous_description

MAX_POINTS = 100_000
DEFAULT_RADIUS_UM = 4.0  # as analysis.matching.evaluate
# Two points of one set closer than this are one nucleus clicked twice (a tumour nucleus is ~6-10 µm across):
# the set would count it twice and train two detections on it. Without a resolution the distance is in slide
# pixels: 3 px is 1.5 µm at 0.5 µm/px (20x), 0.75 µm at 40x and 3 µm at 10x, under a nucleus's width at any
# of them, so two real nuclei are not refused.
MIN_POINT_DISTANCE_UM = 1.5
MIN_POINT_DISTANCE_PX_WITHOUT_MPP = 3.0
MAX_LISTED_PAIRS = 200  # close pairs named in one refusal (the count is always complete)


class AnnotationError(ValueError):
    """Bad input; ``problems`` lists every offending item.  Nothing was changed."""

    http_status = 400  # pdl1site.rest.exception_handler

    def __init__(self, summary: str, problems: list[str] | None = None):
        self.summary, self.problems = summary, list(problems or [])
        super().__init__(formats.FormatError(summary, self.problems).message)

    def http_extra(self) -> dict:
        return {"problems": self.problems}


class ConflictError(Exception):
    """A save based on a stale version: someone (or another tab) saved since."""

    http_status = 409

    def __init__(self, session: AnnotationSession, sent: int):
        self.current_version, self.sent = session.version, sent
        super().__init__(
            f"Conflict: these points were based on version {sent}, but version {session.version} was saved "
            f"since (another tab or person). Nothing was overwritten: reload the current version "
            f"({len(session.points)} points), redo your changes on it and save again."
        )

    def http_extra(self) -> dict:
        return {"current_version": self.current_version, "sent_version": self.sent}


class NotAllowed(Exception):
    """The user's role or relation to the object does not permit the action."""

    http_status = 403


# ----------------------------------------------------------------------------
# Who sees what
# ----------------------------------------------------------------------------


def managed_projects(user):
    """Projects a user may manage and review: admins all; pathologists theirs and their departments'."""
    if access.is_admin(user):
        return AnnotationProject.objects.all()
    if access.has_role(user, Role.PATHOLOGIST):
        return AnnotationProject.objects.filter(
            Q(created_by=user) | Q(created_by__profile__departments__in=access.user_departments(user))).distinct()
    return AnnotationProject.objects.none()


def visible_projects(user):
    return AnnotationProject.objects.filter(
        Q(pk__in=managed_projects(user).values("pk")) | Q(pk__in=AnnotationProject.objects.filter(annotators=user).values("pk"))
    ) if user.is_authenticated else AnnotationProject.objects.none()


def visible_fields(user):
    """Fields of the user's own sessions and of the projects they manage, on slides they may see.

    Managing a project is per slide: a pathologist who manages a project because they share a
    department with its creator does not see (or review) its fields on another department's slides.
    """
    if not user.is_authenticated:
        return Field.objects.none()
    mine = Q(sessions__annotator=user) | Q(project__in=managed_projects(user).values("pk"))
    return Field.objects.filter(mine, slide__in=access.pseudonymous_slides(user).values("pk")).distinct()


def visible_sessions(user):
    """Annotators: their own sessions only; managers: every session of their projects; both only on
    slides the user may see. A manager who annotates a field too does not see the others' sessions of that
    field while their own is open (blind_fields)."""
    if not user.is_authenticated:
        return AnnotationSession.objects.none()
    mine = Q(annotator=user) | Q(field__project__in=managed_projects(user).values("pk"))
    return AnnotationSession.objects.filter(mine, field__slide__in=access.pseudonymous_slides(user).values("pk")) \
        .exclude(Q(field__in=blind_fields(user)) & ~Q(annotator=user))


def blind_fields(user):
    """Fields on which `user` has an editable session of their own (assigned, in progress or returned). Their
    labels must be their own: a pathologist who also annotates a field would otherwise see the other
    annotators' points, consensus and agreement while still placing theirs, and the sets would no longer
    be independent (the consensus would count one opinion twice)."""
    return AnnotationSession.objects.filter(annotator=user, status__in=EDITABLE_STATUSES).values("field")


def check_not_blind(field, user):
    """Others' points of `field` are not shown to an annotator of it whose own session is still open."""
    if field.sessions.filter(annotator=user, status__in=EDITABLE_STATUSES).exists():
        raise NotAllowed("you annotate this field and your own session is still open: submit it before you see "
                         "the other annotators' points, their consensus or agreement")


def can_manage(user, project) -> bool:
    return managed_projects(user).filter(pk=project.pk).exists()


def hidden_fields(user, project):
    """The project's fields on slides `user` may not see (counted, never shown)."""
    return project.fields.exclude(slide__in=access.pseudonymous_slides(user).values("pk"))


def check_manages_whole_project(user, project):
    """Actions over every field of a project (assign annotators, export, train) need every slide."""
    if not can_manage(user, project):
        raise NotAllowed("only the project's pathologists and administrators may do this")
    hidden = hidden_fields(user, project).count()
    if hidden:
        raise NotAllowed(f"{hidden} field(s) of this project are on slides you may not see: only someone who "
                         f"sees every slide of the project may do this")


def project_progress(project, user=None) -> dict:
    """Sessions per status and fields of a project (for the reviewer's pages); with `user`, of the
    fields on slides that user may see."""
    fields = project.fields.all()
    if user is not None:
        fields = fields.filter(slide__in=access.pseudonymous_slides(user).values("pk"))
    counts = {status: 0 for status in SessionStatus.values}
    for row in AnnotationSession.objects.filter(field__in=fields).values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return {"fields": fields.count(), "sessions": sum(counts.values()), **counts}


# ----------------------------------------------------------------------------
# Projects
# ----------------------------------------------------------------------------


def slide_description(slide, project=None) -> str:
    """The slide's pseudonymous description (cases.services.pseudonymous_description), with its number of
    fields in `project` when given."""
    return pseudonymous_description(slide, None if project is None else project.fields.filter(slide=slide).count())


def describe_slides(fields, project) -> None:
    """Set `slide_description` on each field of `project` (one count query for all their slides)."""
    counts = dict(project.fields.values("slide").annotate(n=Count("pk")).values_list("slide", "n"))
    for field in fields:
        field.slide_description = pseudonymous_description(field.slide, counts.get(field.slide_id, 0))


def check_labels(extra_labels) -> list[dict]:
    """Positive and negative always, then the extra labels [{"name", "title"?, "colour"?}]."""
    labels = default_labels()
    problems = []
    for n, lab in enumerate(extra_labels or []):
        if isinstance(lab, str):
            lab = {"name": lab}
        if not isinstance(lab, dict) or not isinstance(lab.get("name"), str) or not lab["name"].strip():
            problems.append(f"label {n}: needs a name")
            continue
        name = lab["name"].strip().lower()
        colour = lab.get("colour", "#00aaff")
        if not (isinstance(colour, str) and len(colour) == 7 and colour.startswith("#")
                and all(c in "0123456789abcdefABCDEF" for c in colour[1:])):
            problems.append(f"label {name!r}: colour must be #rrggbb, got {colour!r}")
            continue
        if name in [x["name"] for x in labels]:
            problems.append(f"label {name!r}: given twice (positive and negative are always there)")
            continue
        if _near_reserved_colour(colour):
            problems.append(f"label {name!r}: colour {colour} is too close to the positive or negative colour "
                            "(red and yellow mean PD-L1-positive and -negative tumour nuclei): choose another")
            continue
        labels.append({"name": name, "title": str(lab.get("title") or name), "colour": colour.lower()})
    if problems:
        raise AnnotationError("bad label set", problems)
    return labels


def _near_reserved_colour(colour: str) -> bool:
    from annotations.choices import RESERVED_COLOUR_DISTANCE, RESERVED_COLOURS

    def rgb(hex_colour):
        return [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]

    return any(sum((a - b) ** 2 for a, b in zip(rgb(colour), rgb(reserved))) ** 0.5 < RESERVED_COLOUR_DISTANCE
               for reserved in RESERVED_COLOURS)


def do_create_project(user, name, indication, marker, extra_labels=(), annotators=()) -> AnnotationProject:
    labels = check_labels(extra_labels)
    if not access.has_role(user, Role.ADMIN, Role.PATHOLOGIST):
        raise NotAllowed("only pathologists and administrators create annotation projects")
    check_annotators(annotators, manager=user)
    with transaction.atomic():
        project = AnnotationProject.objects.create(name=name, indication=indication, marker=marker, labels=labels,
                                                   created_by=user)
        do_assign_annotators(project, annotators, manager=user)
    return project


def assignable_annotators(manager):
    """Users a manager may offer as annotators: annotators, pathologists and admins (the roles
    check_annotators accepts) of the manager's departments; an admin is offered all of them.
    Department sharing is what gives an annotator pseudonymous access to the slides
    (access.pseudonymous_slides); check_annotators still verifies each field's slide."""
    from django.contrib.auth import get_user_model

    roles = (Role.ANNOTATOR, Role.PATHOLOGIST, Role.ADMIN)
    users = get_user_model().objects.filter(Q(groups__name__in=roles) | Q(is_superuser=True), is_active=True)
    if not access.is_admin(manager):
        users = users.filter(profile__departments__in=access.user_departments(manager))
    return users.distinct().order_by("username")


def not_assignable(username) -> str:
    """One message for a name that is unknown, not an annotator or outside the manager's departments:
    which usernames exist, and their roles, are not for the asking."""
    return f"no annotator {username!r} that you may assign"


def check_annotators(users, fields=(), manager=None):
    """Each user may annotate (and, with a `manager`, is one the manager may assign: assignable_annotators)
    and sees every field's slide."""
    problems = []
    offered = set(assignable_annotators(manager).values_list("pk", flat=True)) if manager is not None else None
    for u in users:
        if offered is not None and u.pk not in offered:
            problems.append(not_assignable(u.username))
            continue
        if not access.has_role(u, Role.ANNOTATOR, Role.PATHOLOGIST, Role.ADMIN):
            problems.append(f"user {u.username!r} is not an annotator")
            continue
        allowed = access.pseudonymous_slides(u)
        for f in fields:
            if not allowed.filter(pk=f.slide_id).exists():
                problems.append(f"user {u.username!r} has no access to slide {f.slide.pseudo_id} (field {f.pk})")
    if problems:
        raise AnnotationError("cannot assign these annotators", problems)


def do_assign_annotators(project, users, manager=None) -> list[AnnotationSession]:
    """Add annotators to the project; each gets a session on every field of the project, so a
    `manager` doing it must see every slide of the project."""
    if manager is not None:
        check_manages_whole_project(manager, project)
    fields = list(project.fields.select_related("slide"))
    check_annotators(users, fields, manager=manager)
    created = []
    with transaction.atomic():
        project.annotators.add(*users)
        for u in users:
            for f in fields:
                session, new = AnnotationSession.objects.get_or_create(field=f, annotator=u)
                if new:
                    created.append(session)
    return created


# ----------------------------------------------------------------------------
# Fields
# ----------------------------------------------------------------------------


def check_region(slide, x, y, width, height) -> tuple[int, int, int, int]:
    problems = []
    try:
        x, y, width, height = (int(v) for v in (x, y, width, height))
    except (TypeError, ValueError):
        raise AnnotationError("bad region", ["x, y, width and height must be integers (level-0 pixels)"]) from None
    if width < 1 or height < 1:
        problems.append(f"width and height must be positive, got {width}x{height}")
    if x < 0 or y < 0 or x + width > slide.width or y + height > slide.height:
        problems.append(f"region ({x}, {y}, {width}x{height}) is not inside the {slide.width}x{slide.height} slide")
    if problems:
        raise AnnotationError("bad region", problems)
    return x, y, width, height


def check_field_slide(project, slide):
    """The slide is stained for the project's marker: its points train a model of that marker (db:MARKER, the
    export), and a Ki-67 nucleus called "positive" is not a PD-L1 positive tumour cell."""
    if slide.marker != project.marker:
        raise AnnotationError("field not created", [
            f"slide {slide.pseudo_id} is stained for {slide.marker}, project {project.name!r} annotates "
            f"{project.marker}: choose a {project.marker} slide"])


def check_no_overlap(project, slide, x, y, width, height, exclude=None):
    """The region overlaps none of the project's fields on the slide (touching edges is fine): the same
    nuclei in two fields are two samples of one nucleus, possibly split between train and validation
    images of one slide, and annotated twice (do_sample_fields already kept sampled boxes apart).
    `exclude`: the field being moved (the admin), which its old place does not overlap."""
    others = project.fields.filter(slide=slide).exclude(pk=getattr(exclude, "pk", None)).order_by("pk")
    overlapping = [f for f in others
                   if x < f.x + f.width and f.x < x + width and y < f.y + f.height and f.y < y + height]
    if overlapping:
        raise AnnotationError("field not created", [
            f"region ({x}, {y}, {width}x{height}) overlaps field {f.pk} ({f.x}, {f.y}, {f.width}x{f.height}) of "
            f"this project on this slide" for f in overlapping])


def do_create_field(project, slide, x, y, width, height, user=None, source=FieldSource.DRAWN,
                    tissue_fraction=None) -> Field:
    check_field_slide(project, slide)
    x, y, width, height = check_region(slide, x, y, width, height)
    annotators = list(project.annotators.all())
    with transaction.atomic():
        # The project's row, locked: two requests drawing on one slide at once see each other's field.
        AnnotationProject.objects.select_for_update().filter(pk=project.pk).first()
        check_no_overlap(project, slide, x, y, width, height)
        field = Field.objects.create(project=project, slide=slide, x=x, y=y, width=width, height=height,
                                     source=source, created_by=user, tissue_fraction=tissue_fraction)
        check_annotators(annotators, [field])  # rolls back the field when one cannot see the slide
        for u in annotators:
            AnnotationSession.objects.create(field=field, annotator=u)
    return field


def sample_boxes(mask, width0: int, height0: int, n: int, size0: int, seed: int = 0, min_tissue: float = 0.5,
                 existing=(), tries: int = 2000) -> list[tuple[int, int, float]]:
    """Up to n non-overlapping size0 x size0 boxes (x, y, tissue fraction) mostly on tissue.

    Pure: ``mask`` is an analysis.tissue.TissueMask.  Candidates are centred on random tissue
    pixels of the mask, so sampling stays fast on a mostly empty slide.
    """
    if size0 > width0 or size0 > height0:
        return []
    rng = np.random.default_rng(seed)
    rows, cols = np.nonzero(mask.mask)
    boxes: list[tuple[int, int, float]] = []
    taken = list(existing)
    if rows.size == 0:
        return boxes
    for _ in range(tries):
        if len(boxes) >= n:
            break
        k = rng.integers(rows.size)
        cx = (cols[k] + rng.random()) * mask.downsample
        cy = (rows[k] + rng.random()) * mask.downsample
        x = int(min(max(round(cx - size0 / 2), 0), width0 - size0))
        y = int(min(max(round(cy - size0 / 2), 0), height0 - size0))
        if any(x < bx + bw and bx < x + size0 and y < by + bh and by < y + size0 for bx, by, bw, bh in taken):
            continue
        frac = mask.fraction_in_box(x, y, x + size0, y + size0)
        if frac < min_tissue:
            continue
        boxes.append((x, y, frac))
        taken.append((x, y, size0, size0))
    return boxes


def do_sample_fields(project, slide, n: int, size_px: int = 1024, mpp: float | None = None, seed: int = 0,
                     min_tissue: float = 0.5, user=None) -> list[Field]:
    """Sample n square fields on tissue, size_px wide at `mpp` µm/px (default: level 0).

    E.g. 1024x1024 at 40x: size_px=1024, mpp=0.25.  New fields never overlap the project's
    existing fields on this slide.  Raises AnnotationError when fewer than n fit.
    """
    from analysis import tissue
    from slideio.slidefile import open_slide

    check_field_slide(project, slide)  # before the slide is read
    # Bounded as the forms and API bound them (n is bounded by sample_boxes' tries).
    if not (n >= 1 and 16 <= size_px <= 20_000 and 0 <= seed < 2**32):
        raise AnnotationError("bad sampling request", [
            f"n must be >= 1, size_px 16-20000 and seed 0-{2**32 - 1}; got n={n}, size_px={size_px}, seed={seed}"])
    if mpp is not None:
        if not slide.mpp_x:
            raise AnnotationError("bad sampling request", ["the slide has no resolution (mpp): set it first"])
        if not 0.05 <= mpp <= 20:
            raise AnnotationError("bad sampling request", [f"mpp must be 0.05-20 µm/px, got {mpp}"])
        size0 = int(round(size_px * mpp / slide.mpp_x))
    else:
        size0 = int(size_px)
    if size0 < 16:
        raise AnnotationError("bad sampling request", [f"a field of {size0} slide pixels is too small (at least 16)"])
    if size0 > slide.width or size0 > slide.height:
        raise AnnotationError("bad sampling request",
                              [f"a {size0}x{size0} px field does not fit the {slide.width}x{slide.height} slide"])
    handle = open_slide(slide.path)
    try:
        mask = tissue.tissue_mask(handle, slide_mpp=slide.mpp_x)
    finally:
        handle.close()
    existing = [(f.x, f.y, f.width, f.height) for f in project.fields.filter(slide=slide)]
    boxes = sample_boxes(mask, slide.width, slide.height, n, size0, seed, min_tissue, existing)
    if len(boxes) < n:
        raise AnnotationError("cannot sample fields", [
            f"only {len(boxes)} non-overlapping {size0}x{size0} px field(s) with >= {min_tissue:.0%} tissue fit "
            f"(asked for {n})"])
    with transaction.atomic():
        return [do_create_field(project, slide, x, y, size0, size0, user, FieldSource.SAMPLED, frac)
                for x, y, frac in boxes]


# ----------------------------------------------------------------------------
# Points
# ----------------------------------------------------------------------------


def _finite(v) -> bool:
    """A finite number a float can hold (an integer of 400 digits is not: math.isfinite overflows on it)."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def check_points(field, label_names, points) -> list[list]:
    """Normalised [[x, y, label]]; every point outside the field or with an unknown label, and every pair of
    points closer than min_point_distance (one nucleus twice), is listed."""
    if not isinstance(points, list):
        raise AnnotationError("bad points", ["'points' must be a list of {x, y, label}"])
    if len(points) > MAX_POINTS:
        raise AnnotationError("bad points", [f"at most {MAX_POINTS} points per field, got {len(points)}"])
    known = {name.lower(): name for name in label_names}
    out, index, problems = [], [], []  # index: each kept point's number in the input, for the messages
    for n, p in enumerate(points):
        if isinstance(p, dict):
            x, y, label = p.get("x"), p.get("y"), p.get("label")
        elif isinstance(p, (list, tuple)) and len(p) == 3:
            x, y, label = p
        else:
            problems.append(f"point {n}: must be {{x, y, label}}, got {p!r}")
            continue
        if isinstance(x, bool) or isinstance(y, bool) or not isinstance(x, (int, float)) or not isinstance(y, (int, float)) \
                or not (_finite(x) and _finite(y)):
            problems.append(f"point {n}: x and y must be numbers, got {str(x)[:40]!r}, {str(y)[:40]!r}")
            continue
        bad = []
        name = known.get(label.strip().lower()) if isinstance(label, str) else None
        if name is None:
            bad.append(f"unknown label {label!r} (labels: {', '.join(label_names)})")
        if not field.contains(x, y):
            bad.append(f"({x}, {y}) is outside the field [{field.x}, {field.x + field.width}) x "
                       f"[{field.y}, {field.y + field.height})")
        if bad:
            problems.append(f"point {n}: " + "; ".join(bad))
            continue
        out.append([float(x), float(y), name])
        index.append(n)
    problems += close_pairs(field, out, index)
    if problems:
        raise AnnotationError("points rejected, nothing saved", problems)
    return out


def min_point_distance(field) -> tuple[float, str]:
    """(distance in level-0 px, how it reads) under which two points of a set are one nucleus twice."""
    mpp = field.slide.mpp_x
    if mpp:
        return MIN_POINT_DISTANCE_UM / mpp, f"{MIN_POINT_DISTANCE_UM:g} µm"
    return MIN_POINT_DISTANCE_PX_WITHOUT_MPP, (f"{MIN_POINT_DISTANCE_PX_WITHOUT_MPP:g} slide px (the slide has no "
                                               f"resolution, so {MIN_POINT_DISTANCE_UM:g} µm cannot be measured)")


def close_pairs(field, points, index) -> list[str]:
    """Each pair of points closer than min_point_distance, as a problem naming both (their input numbers)."""
    if len(points) < 2:
        return []
    from scipy.spatial import cKDTree

    limit, words = min_point_distance(field)
    xy = np.asarray([p[:2] for p in points], np.float64)
    pairs = sorted((i, j) for i, j in cKDTree(xy).query_pairs(limit)
                   if math.dist(xy[i], xy[j]) < limit)  # query_pairs includes the limit itself
    problems = []
    for i, j in pairs[:MAX_LISTED_PAIRS]:
        d = math.dist(xy[i], xy[j])
        apart = f"{d * field.slide.mpp_x:.2f} µm" if field.slide.mpp_x else f"{d:.2f} px"
        problems.append(f"points {index[i]} ({points[i][0]:g}, {points[i][1]:g}) and {index[j]} ({points[j][0]:g}, "
                        f"{points[j][1]:g}) are {apart} apart, closer than {words}: one nucleus twice? keep one")
    if len(pairs) > MAX_LISTED_PAIRS:
        problems.append(f"... and {len(pairs) - MAX_LISTED_PAIRS} more pair(s) closer than {words}")
    return problems


def check_can_edit(session, user):
    if session.annotator_id != user.pk:
        raise NotAllowed("only the session's annotator may change its points")
    if session.status not in EDITABLE_STATUSES:
        raise TransitionError(f"the session is {session.get_status_display().lower()}: its points are locked")


def do_save_points(session, user, version, points, source="api") -> AnnotationSession:
    """Replace the whole point set if `version` is current (compare-and-set); keep a revision."""
    check_can_edit(session, user)
    if isinstance(version, bool) or not isinstance(version, int):
        raise AnnotationError("bad request", ["'version' (the version the points are based on) must be an integer"])
    clean = check_points(session.field, session.field.project.label_names, points)
    status = SessionStatus.IN_PROGRESS if session.status == SessionStatus.ASSIGNED else session.status
    with transaction.atomic():
        updated = AnnotationSession.objects.filter(
            pk=session.pk, version=version, status__in=EDITABLE_STATUSES
        ).update(points=clean, version=F("version") + 1, status=status, updated_at=timezone.now())
        session.refresh_from_db()
        if not updated:
            if session.status not in EDITABLE_STATUSES:
                raise TransitionError(f"the session is {session.get_status_display().lower()}: its points are locked")
            raise ConflictError(session, version)
        AnnotationRevision.objects.create(session=session, version=session.version, points=clean, saved_by=user,
                                          source=source)
    return session


def parse_points(text, fmt: str) -> list[tuple]:
    if fmt == "geojson":
        return formats.parse_geojson(text)
    if fmt == "csv":
        return formats.parse_csv(text)
    raise AnnotationError("bad request", [f"format must be geojson or csv, got {fmt!r}"])


def do_import_points(session, user, version, text, fmt: str) -> AnnotationSession:
    """Replace the session's points by a GeoJSON/CSV file; all or nothing."""
    check_can_edit(session, user)
    try:
        parsed = parse_points(text, fmt)
    except formats.FormatError as exc:
        raise AnnotationError(exc.summary + ", nothing imported", exc.problems) from None
    try:
        clean = check_points(session.field, session.field.project.label_names, [list(p) for p in parsed])
    except AnnotationError as exc:
        raise AnnotationError(f"{fmt} import rejected, nothing imported", exc.problems) from None
    return do_save_points(session, user, version, clean, source=fmt)


def export_points(session, fmt: str):
    if fmt == "geojson":
        return formats.to_geojson(session.points, session.field.project.labels)
    if fmt == "csv":
        return formats.to_csv(session.points)
    raise AnnotationError("bad request", [f"format must be geojson or csv, got {fmt!r}"])


# ----------------------------------------------------------------------------
# Submit and review
# ----------------------------------------------------------------------------


def check_submitter(session, user):
    if session.annotator_id != user.pk:
        raise NotAllowed("only the session's annotator may submit it")


def check_version(version, what: str) -> int:
    """A version sent from outside: a whole number (bool, float and text are refused, not coerced)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise AnnotationError("bad request", [f"'version' ({what}) must be a whole number, got {version!r}"])
    return version


def do_submit(session, user, version: int | None = None):
    """Submit the point set of `version` (the one the annotator saw; the page and the API send it): stale ->
    StaleVersionError (409), nothing submitted. None only for scripts that submit what they just saved."""
    check_submitter(session, user)
    if version is not None:
        check_version(version, "the version of the points you submit")
    session.submit(version)
    return session


def check_reviewer(session, user):
    if not can_manage(user, session.field.project):
        raise NotAllowed("only the project's pathologists and administrators review sessions")
    if not access.pseudonymous_slides(user).filter(pk=session.field.slide_id).exists():
        raise NotAllowed("this session is on a slide you may not see")
    if session.annotator_id == user.pk:
        raise NotAllowed("an annotator cannot review their own session")
    check_not_blind(session.field, user)


def do_accept(session, reviewer, comment="", version: int | None = None):
    """`version`: the session version the reviewer saw; a session resubmitted since is not accepted.

    The points are checked again as a save checks them (inside the field, the project's labels): an accepted
    session is training data, and its points were checked against the field and label set of their save,
    which may have changed since (an older admin moved fields; data from before a check existed)."""
    check_reviewer(session, reviewer)
    try:
        check_points(session.field, session.field.project.label_names, session.points)
    except AnnotationError as exc:
        raise AnnotationError(f"session {session.pk} not accepted: its points do not fit the field or the "
                              f"project's labels now; return it to the annotator", exc.problems) from None
    session.accept(reviewer, comment or "", version)
    return session


def do_return(session, reviewer, comment, version: int | None = None):
    check_reviewer(session, reviewer)
    session.return_(reviewer, comment or "", version)
    return session


REVIEW_STATUSES = (SessionStatus.SUBMITTED, SessionStatus.ACCEPTED)


def _sets(field, statuses) -> dict[str, list]:
    sessions = field.sessions.filter(status__in=statuses).select_related("annotator").order_by("annotator__username")
    return {s.annotator.username: s.points for s in sessions}


def _radius_px(field, radius_um):
    if not field.slide.mpp_x:
        raise AnnotationError("bad request", ["the slide has no resolution (mpp): a radius in µm cannot be used"])
    if not (isinstance(radius_um, (int, float)) and 0 < radius_um <= 100):
        raise AnnotationError("bad request", [f"radius_um must be in (0, 100], got {radius_um!r}"])
    return float(radius_um) / field.slide.mpp_x


def field_agreement(field, radius_um=DEFAULT_RADIUS_UM, statuses=REVIEW_STATUSES) -> dict:
    return {"field": field.pk, "radius_um": radius_um,
            **review.agreement(_sets(field, statuses), _radius_px(field, radius_um))}


def field_consensus(field, radius_um=DEFAULT_RADIUS_UM, statuses=REVIEW_STATUSES, min_votes=None) -> dict:
    """review.consensus of the field's sets in `statuses`; AnnotationError when fewer than two annotators' sets
    are there (one annotator's points shown as "consensus" would read as agreed when nobody checked them)."""
    sets = _sets(field, statuses)
    radius_px = _radius_px(field, radius_um)
    if len(sets) < review.MIN_ANNOTATORS:
        which = f" (only {', '.join(sets)})" if sets else ""
        raise AnnotationError("no consensus", [
            f"a consensus needs the points of at least {review.MIN_ANNOTATORS} annotators; this field has "
            f"{len(sets)} {'/'.join(s.label.lower() for s in SessionStatus if s in statuses)} set(s){which}"])
    return {"field": field.pk, "radius_um": radius_um, **review.consensus(sets, radius_px, min_votes)}


# Marker shapes of the review page, one per annotator in username order; the fill is the label's colour.
REVIEW_SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star", "hexagon", "plus")


def field_review(field, reviewer, radius_um=DEFAULT_RADIUS_UM) -> dict:
    """Everything the field's review page shows: each annotator's points (own marker shape),
    agreement and consensus of the submitted/accepted sets, and which sessions await review.
    NotAllowed while the reviewer's own session of the field is open (check_not_blind)."""
    check_not_blind(field, reviewer)
    sessions = list(field.sessions.select_related("annotator", "reviewed_by").order_by("annotator__username"))
    layers = []
    for n, s in enumerate(sessions):
        layers.append({
            "session": s.pk, "annotator": s.annotator.username, "status": s.status,
            "shape": REVIEW_SHAPES[n % len(REVIEW_SHAPES)], "points": s.points,
            "label_counts": [(name, s.counts().get(name, 0)) for name in field.project.label_names],
            "visible": s.status in REVIEW_STATUSES,
        })
    agreement = consensus = None
    problems = []
    try:
        agreement = field_agreement(field, radius_um)
    except AnnotationError as exc:
        problems += exc.problems
    try:
        consensus = field_consensus(field, radius_um)
    except AnnotationError as exc:
        problems += [p for p in exc.problems if p not in problems]
    # Tied clusters go on the consensus layer as grey rings ("uncertain" has no label colour): seen, never
    # shown in a label's colour as if agreed.
    config = {
        "field": field.region, "labels": field.project.labels, "layers": layers,
        "consensus": [*consensus["points"], *([u["x"], u["y"], "uncertain"] for u in consensus["uncertain"])]
        if consensus else [],
    }
    return {
        "field": field, "project": field.project, "slide_pseudo_id": field.slide.pseudo_id,
        "sessions": [(s, layer) for s, layer in zip(sessions, layers)],
        "agreement": agreement, "consensus": consensus, "problems": problems, "radius_um": radius_um,
        "reviewer": reviewer, "config": config,
    }
