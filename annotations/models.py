"""Point annotation of nuclei on pseudonymised slides.

Storage choice: the points of one annotator on one field are ONE JSON array on the
AnnotationSession (``[[x, y, label], ...]``, level-0 slide pixels, pixel centres at integers)
with a ``version`` counter.  A save replaces the whole set and is a compare-and-set on the
version (``UPDATE ... WHERE version = n``), so two tabs or two people can never silently
overwrite each other: the stale writer gets a conflict and the current version.  Every saved
set is also appended to AnnotationRevision, so nothing saved is ever lost.
"""

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from annotations.choices import DEFAULT_LABELS, EDITABLE_STATUSES, FieldSource, SessionStatus
from cases.choices import Indication, Marker
from cases.models import Slide


def default_labels():
    return [dict(label) for label in DEFAULT_LABELS]


class TransitionError(ValueError):
    """A state change that the session's status does not allow."""

    http_status = 409  # pdl1site.rest.exception_handler


class StaleVersionError(TransitionError):
    """A submit or review of a version that is no longer the session's: saved (or resubmitted) since, e.g. in
    another tab. Nothing changed; the answer carries both versions (as services.ConflictError does)."""

    def __init__(self, message: str, current: int, sent: int):
        self.current_version, self.sent = current, sent
        super().__init__(message)

    def http_extra(self) -> dict:
        return {"current_version": self.current_version, "sent_version": self.sent}


class AnnotationProject(models.Model):
    name = models.CharField(max_length=200)
    indication = models.CharField(max_length=32, choices=Indication.choices, default=Indication.OTHER)
    marker = models.CharField(max_length=16, choices=Marker.choices, default=Marker.PDL1)
    labels = models.JSONField(default=default_labels,
                              help_text='Label set: [{"name", "title", "colour"}]; positive and negative always.')
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    annotators = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="annotation_projects")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name

    @property
    def label_names(self) -> list[str]:
        return [label["name"] for label in self.labels]


class Field(models.Model):
    """A rectangle of a slide to annotate, in level-0 pixels: [x, x + width) x [y, y + height)."""

    project = models.ForeignKey(AnnotationProject, on_delete=models.PROTECT, related_name="fields")
    slide = models.ForeignKey(Slide, on_delete=models.PROTECT, related_name="annotation_fields")
    x = models.PositiveIntegerField()
    y = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    source = models.CharField(max_length=16, choices=FieldSource.choices, default=FieldSource.DRAWN)
    tissue_fraction = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "pk"]

    def __str__(self):
        return f"field {self.pk} of {self.slide.pseudo_id} ({self.x},{self.y} {self.width}x{self.height})"

    @property
    def region(self) -> list[int]:
        return [self.x, self.y, self.width, self.height]

    def contains(self, x: float, y: float) -> bool:
        """The point's pixel (floor(v + 0.5)) lies in the field."""
        return self.x - 0.5 <= x < self.x + self.width - 0.5 and self.y - 0.5 <= y < self.y + self.height - 0.5

    @property
    def worked_on(self) -> bool:
        """A session of the field has saved points or moved on from "assigned": its points are in this field's
        frame, so the field's slide and rectangle may no longer change (they would fall outside it)."""
        return self.sessions.exclude(status=SessionStatus.ASSIGNED, version=0).exists()


class AnnotationSession(models.Model):
    """One annotator's points on one field, and its review."""

    field = models.ForeignKey(Field, on_delete=models.PROTECT, related_name="sessions")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotation_sessions")
    status = models.CharField(max_length=16, choices=SessionStatus.choices, default=SessionStatus.ASSIGNED)
    points = models.JSONField(default=list, blank=True, help_text="[[x, y, label], ...] level-0 slide px")
    version = models.PositiveIntegerField(default=0, help_text="Incremented by every save of the point set")
    comment = models.TextField(blank=True, help_text="Reviewer's comment (why it was returned)")
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["field", "annotator"]
        constraints = [models.UniqueConstraint(fields=["field", "annotator"], name="one_session_per_annotator_field")]

    def __str__(self):
        return f"session {self.pk} ({self.annotator} on field {self.field_id}, {self.status})"

    @property
    def editable(self) -> bool:
        return self.status in EDITABLE_STATUSES

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, _, label in self.points:
            out[label] = out.get(label, 0) + 1
        return out

    def _move(self, allowed_from, version: int | None = None, **changes) -> bool:
        """Change the row only if it is still in one of `allowed_from` (and at `version` when given): the
        check on the row locked as it is now, so two requests that loaded the same session cannot both move it
        (an accepted session reopened by a second reviewer's stale page). Updates this instance; False when
        refused."""
        with transaction.atomic():
            current = type(self).objects.select_for_update().get(pk=self.pk)  # the row as it is now, locked
            if current.status not in allowed_from or (version is not None and current.version != version):
                self.refresh_from_db()
                return False
            self.status, self.version = current.status, current.version
            for name, value in changes.items():
                setattr(self, name, value)
            self.save(update_fields=[*changes, "updated_at"])  # save(), not update(): the audit log sees it
        return True

    def submit(self, version: int | None = None):
        """`version`: the point set the annotator saw and submits (the page and the API send it): a tab that
        was behind submitted points it never showed. None: as it is now (scripts)."""
        if not self._move(EDITABLE_STATUSES, version, status=SessionStatus.SUBMITTED, submitted_at=timezone.now()):
            if self.status in EDITABLE_STATUSES:  # refused only by the version: saved since
                raise StaleVersionError(
                    f"Conflict: you submitted version {version}, but version {self.version} was saved since "
                    f"(another tab or person). Nothing was submitted: reload, check the points and submit again.",
                    self.version, version)
            raise TransitionError(f"a {self.get_status_display().lower()} session cannot be submitted")

    def _review(self, reviewer, status, comment, version: int | None = None):
        if not self._move((SessionStatus.SUBMITTED,), version, status=status, comment=comment, reviewed_by=reviewer,
                          reviewed_at=timezone.now()):
            if self.status == SessionStatus.SUBMITTED:  # refused only by the version: resubmitted since
                raise StaleVersionError(f"the session changed since you loaded it (version {self.version} now, you "
                                        f"reviewed {version}): reload it and review what is there now",
                                        self.version, version)
            raise TransitionError(f"only a submitted session can be reviewed (this one is {self.status})")

    def accept(self, reviewer, comment: str = "", version: int | None = None):
        """`version`: the one the reviewer saw (the review page and the API send it); None: as it is now."""
        self._review(reviewer, SessionStatus.ACCEPTED, comment, version)

    def return_(self, reviewer, comment: str, version: int | None = None):
        if not comment or not comment.strip():
            raise TransitionError("returning a session needs a comment saying what to change")
        self._review(reviewer, SessionStatus.RETURNED, comment.strip(), version)


class AnnotationRevision(models.Model):
    """Every point set ever saved (append-only history): nothing saved is lost."""

    session = models.ForeignKey(AnnotationSession, on_delete=models.CASCADE, related_name="revisions")
    version = models.PositiveIntegerField()
    points = models.JSONField(default=list)
    saved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=16, default="api", help_text="api, geojson or csv")
    saved_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "version"]
        constraints = [models.UniqueConstraint(fields=["session", "version"], name="unique_annotation_revision")]
