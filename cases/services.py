"""Clinical-record services shared by the web pages, the REST API and management commands."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from pdl1site.conf import settings
from django.db import transaction

from cases.choices import Marker, MppSource, Role
from cases.models import Case, Patient, Slide
from cases.isolation import run_limited
from slideio.slidefile import (
    ASSOCIATED_IMAGE_NAMES,
    PLAUSIBLE_MPP,
    SlideError,
    check_series_members,
    dicom_identifiers,
    read_associated_image,
    validate_slide,
)

log = logging.getLogger(__name__)

_CHUNK = 4 * 1024 * 1024
MAX_NAME_LENGTH = 200
MAX_NAME_BYTES = 255


class IngestError(Exception):
    """Bad input for slide ingest; the message is meant for the user."""


class IngestStorageFull(IngestError):
    """The slide storage filled up while the slide was stored: nothing was kept (HTTP 507)."""


@dataclass
class IngestSource:
    """One file to ingest: its user-facing name and where its bytes are now."""

    name: str
    path: Path
    movable: bool = False  # a temporary upload we may move instead of copy


@dataclass
class IngestResult:
    slide: Slide
    created: bool

    @property
    def duplicate(self) -> bool:
        return not self.created


# Stored beside the slide's own files: a hidden name, which no uploaded file may have (check_file_name),
# so a slide uploaded as "thumbnail.png" is never overwritten by its own thumbnail.
THUMBNAIL_NAME = ".thumbnail.png"


def check_file_name(name: str) -> str:
    """A plain file name: no directories, no traversal, nothing hidden or unprintable."""
    if not name or not name.strip():
        raise IngestError("the file has no name")
    if "/" in name or "\\" in name or name in (".", "..") or os.path.isabs(name):
        raise IngestError(f"file name {name!r} must not contain path parts")
    if name.startswith(".") or any(ord(ch) < 32 for ch in name):
        raise IngestError(f"file name {name!r} is not allowed")
    if len(name) > MAX_NAME_LENGTH:
        raise IngestError(f"file name is longer than {MAX_NAME_LENGTH} characters")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:  # the file system's limit, whatever the characters
        raise IngestError(f"file name is longer than {MAX_NAME_BYTES} bytes (UTF-8)")
    return name


def _raise_if_storage_full(exc: OSError) -> None:
    import errno

    from cases.uploads import STORAGE_FULL

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        log.error("slide storage full while storing a slide: %s", exc)
        raise IngestStorageFull(STORAGE_FULL) from None


def check_mpp(value) -> float:
    try:
        mpp = float(value)
    except (TypeError, ValueError):
        raise IngestError(f"mpp {value!r} is not a number") from None
    if not (PLAUSIBLE_MPP[0] <= mpp <= PLAUSIBLE_MPP[1]):
        raise IngestError(f"mpp {mpp} µm/px is outside the plausible range {PLAUSIBLE_MPP[0]}–{PLAUSIBLE_MPP[1]}")
    return mpp


def do_ingest_slide(
    sources: list[IngestSource],
    *,
    case: Case | None = None,
    uploaded_by=None,
    mpp: float | None = None,
    marker: str | None = None,
) -> IngestResult:
    """Validate, store and register a slide (one file, or a DICOM series of several).

    Bad input raises IngestError and leaves no Slide row and no file in storage. A file whose
    sha256 is already stored as a slide the uploader may see is not stored again: that slide comes
    back, created=False, if it agrees with what the upload asked for (check_duplicate_request: its
    case, resolution and marker; a resolution it lacks is set). A copy the uploader may not see
    (another department's) is never disclosed: the file is stored again as a slide of its own.
    `marker` None: PD-L1 for a new slide, and whatever a stored duplicate has.
    """
    if not sources:
        raise IngestError("no file was given")

    staging = Path(settings.MEDIA_ROOT) / "tmp" / f"ingest-{uuid.uuid4().hex}"
    try:
        names = [check_file_name(src.name) for src in sources]
        if len(set(names)) != len(names):
            raise IngestError("two files of the series have the same name")
        if mpp is not None:
            mpp = check_mpp(mpp)
        if marker is not None and marker not in Marker.values:
            raise IngestError(f"unknown marker {marker!r}; choose one of {', '.join(Marker.values)}")
        staging.mkdir(parents=True)
        try:
            digests, total = _stage(sources, staging)
        except OSError as exc:
            _raise_if_storage_full(exc)
            raise
        limits = _validation_limits()
        # Before the duplicate check, which may file a stored copy in this case.
        _check_case_identity([staging / name for name in names], case, limits,
                             names[0] if len(names) == 1 else "the series")
        sha256 = digests[0] if len(digests) == 1 else _series_digest(digests)
        existing = _visible_duplicate(sha256, uploaded_by, case)
        agreed = check_duplicate_request(existing, case, mpp, marker) if existing is not None else None
        if agreed is not None:
            return IngestResult(agreed, created=False)
        main = staging / _main_file(staging, names)
        try:
            # Opening the members parses untrusted files in C, as decoding does: under the same guard.
            if len(names) > 1:
                run_limited(check_series_members, [str(staging / name) for name in names], **limits)
            # Decoding runs in a child process under a memory ceiling (cases.isolation).
            info = run_limited(validate_slide, str(main), str(staging / THUMBNAIL_NAME),
                               settings.PDL1_SLIDE_MAX_PIXELS, settings.PDL1_SLIDE_MAX_DECODE_PIXELS, **limits)
        except SlideError as exc:
            # The readers name files by their staging path (/…/media/tmp/ingest-<uuid>/x.dcm): the user
            # knows the file by its name, and the server's layout is none of their business.
            message = str(exc).replace(str(staging) + os.sep, "").replace(str(staging), "the upload")
            raise IngestError(f"{names[0] if len(names) == 1 else 'the series'}: {message}") from None
        except OSError as exc:
            _raise_if_storage_full(exc)
            raise
        except Exception as exc:  # noqa: BLE001  a decoder's own error type (imagecodecs, tifffile, ...)
            # The server log names the upload by its content (sha256), never by its file name: often an accession
            # number, which the decoder's message may repeat (with its staging path) and a traceback would carry.
            detail = str(exc).replace(str(staging), "the upload")
            for name in names:
                detail = detail.replace(name, "<file>")
            log.warning("upload %s (sha256 %s) could not be decoded: %s: %s", staging.name, sha256[:16],
                        type(exc).__name__, detail[:300])
            raise IngestError(f"{names[0] if len(names) == 1 else 'the series'}: the file cannot be decoded "
                              f"({type(exc).__name__}); it may be corrupt or in an unsupported encoding") from None
        mpp = _typed_mpp(mpp, info, names[0] if len(names) == 1 else "the series")
        try:
            return _register(staging, main.name, sha256, total, len(names), info, case, uploaded_by, mpp,
                             marker or Marker.PDL1)
        except OSError as exc:
            _raise_if_storage_full(exc)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for src in sources:  # temporary uploads not moved into storage are ours to delete
            if src.movable:
                Path(src.path).unlink(missing_ok=True)


# A typed resolution within this fraction of the file's own is the same resolution (rounding of a
# displayed value: 0.5 typed for a scanner's 0.4990); further apart, one of them is wrong.
MPP_AGREEMENT = 0.01


def mpp_agrees(a: float, b: float) -> bool:
    return abs(a - b) <= MPP_AGREEMENT * max(a, b)


def _typed_mpp(mpp: float | None, info, name: str) -> float | None:
    """The resolution typed at upload, checked against the one the file declares: None (keep the
    file's) when they agree. Every µm, mm² and the detector's working resolution follow the mpp, so
    a typed value never silently replaces the scanner's: a disagreement is refused naming both, and
    a user sure the file is wrong sets it on the slide afterwards (do_set_slide_mpp, audited)."""
    if mpp is None or info.mpp_x is None:
        return mpp
    declared_y = info.mpp_y if info.mpp_y is not None else info.mpp_x
    if mpp_agrees(mpp, info.mpp_x) and mpp_agrees(mpp, declared_y):
        return None
    declared = f"{info.mpp_x:g}" if declared_y == info.mpp_x else f"{info.mpp_x:g} × {declared_y:g}"
    raise IngestError(f"{name}: the file declares {declared} µm/px, not the {mpp:g} µm/px given: upload it without "
                      "a resolution to keep the file's; if the file's is wrong, set the resolution on the slide's "
                      "page after the upload (the change is recorded). Nothing was stored.")


def _same_identifier(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _validation_limits() -> dict:
    """The guard (cases.isolation.run_limited) under which untrusted slide files are parsed."""
    return {"memory_bytes": settings.PDL1_SLIDE_VALIDATION_MEMORY_BYTES,
            "timeout_s": settings.PDL1_SLIDE_VALIDATION_TIMEOUT_SECONDS}


def _check_case_identity(paths: list[Path], case, limits: dict, name: str,
                         outcome: str = "nothing was stored") -> None:
    """A DICOM file says whose it is (PatientID, AccessionNumber): filed in a case of another patient or
    accession, its pixels and the report would be that case's. Refused when the file names a patient
    ID other than the case's patient's MRN, or an accession other than the case's; a file naming
    neither is not checked (most formats carry no identity at all). Files of one series naming two
    patients are refused with or without a case. The one rule for an upload and for a stored slide
    moved to another case (check_slide_case_change); `outcome` ends the message (what did not happen)."""
    if not any(_is_dicom_file(path) for path in paths):
        return
    try:
        found = run_limited(dicom_identifiers, [str(path) for path in paths], **limits)
    except SlideError as exc:
        raise IngestError(f"{name}: {exc}") from None
    if case is None:
        return
    expected = {"PatientID": ("the MRN of the case's patient", case.patient.mrn),
                "AccessionNumber": ("the case's accession", case.accession)}
    for key, (what, value) in expected.items():
        if found.get(key) and value and not _same_identifier(found[key], value):
            raise IngestError(f"{name}: the DICOM file names {key} {found[key]!r}, not {what} ({value!r}) in case "
                              f"{case.accession}: it may belong to another patient or case. Check the case; "
                              f"{outcome}")


def _stored_files(slide: Slide) -> list[Path]:
    """The files a stored slide was uploaded as: its main file and, for a DICOM series, the other members
    stored beside it (each slide has a folder of its own, see _register; its thumbnail has a hidden name,
    which no uploaded file may have)."""
    main = Path(slide.path)
    if slide.file_count <= 1:
        return [main]
    try:
        return sorted(p for p in main.parent.iterdir() if not p.name.startswith(".") and p.is_file())
    except OSError:
        return [main]


def check_slide_case_change(slide: Slide, case: Case | None) -> None:
    """A stored slide moved to another case, or an unfiled one filed in a case, is checked as at upload
    (_check_case_identity): a DICOM file naming another patient ID or accession than `case`'s is refused
    (IngestError, meant for the user), and the caller changes nothing. The identity is read from the
    stored file again: the slide keeps none of it (its properties are filtered, see
    slideio.slidefile.technical_properties). Unfiling (`case` None) and staying in the stored case are
    not checked; a slide stored as DICOM whose file cannot be read is not moved, its identity being
    unknown."""
    if case is None or not slide.file:
        return
    stored = Slide.objects.filter(pk=slide.pk).values_list("case_id", flat=True).first() if slide.pk else None
    if stored == case.pk:
        return
    paths = _stored_files(slide)
    if slide.format == "dicom" and not any(_is_dicom_file(path) for path in paths):
        raise IngestError(f"{slide.original_name}: the slide's stored DICOM file cannot be read, so whose it is "
                          f"cannot be checked against case {case.accession}; the slide was not moved")
    _check_case_identity(paths, case, _validation_limits(), slide.original_name,
                         outcome="the slide was not moved")


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def check_duplicate_request(existing: Slide, case, mpp: float | None, marker: str | None) -> Slide | None:
    """The stored slide an upload of the same file comes back as, when it agrees with what the upload asked
    for; None when the upload asks for another case that slide is in (the scan is then stored again, as a
    slide of that case: a slide stays with the case its reports state).  An unfiled slide is filed in the
    case asked for, and a resolution it lacks is set; another resolution or marker is an IngestError
    naming it (a value the user typed is never silently dropped)."""
    named = f"this file is already stored as slide {existing.original_name!r}"
    with transaction.atomic():
        existing = Slide.objects.select_for_update().get(pk=existing.pk)  # two uploads at once: one decides
        if case is not None and existing.case_id not in (None, case.pk):
            return None
        if marker is not None and marker != existing.marker:
            raise IngestError(f"{named}, stained for {existing.marker}, not {marker}: if its marker is wrong, correct "
                              f"it (PATCH /api/slides/{existing.pk}/ with the marker); it was not stored again")
        # Against the scanner's resolution, the tolerance of a first upload (_typed_mpp): the same file
        # with the same typed value is not refused the second time; a typed one is matched exactly.
        tolerance = mpp_agrees if existing.mpp_source == MppSource.SCANNER else (lambda a, b: abs(a - b) <= 1e-9)
        if mpp is not None and existing.mpp_x is not None and not (
                tolerance(mpp, existing.mpp_x) and tolerance(mpp, existing.mpp_y or existing.mpp_x)):
            raise IngestError(f"{named} at {existing.mpp_x:g} µm/px, not {mpp:g}: set its resolution on the "
                              "slide's page if that one is wrong; it was not stored again")
        # Agreed: only now is anything changed (a refused upload changes nothing).
        if case is not None and existing.case_id is None:
            # The upload's files were checked against the case (_check_case_identity); the stored copy is
            # filed through the check every move of a slide passes.
            check_slide_case_change(existing, case)
            existing.case = case
            existing.save(update_fields=["case"])  # audited
        if mpp is not None and existing.mpp_x is None:
            existing = do_set_slide_mpp(existing, mpp)
    return existing


def do_set_slide_mpp(slide: Slide, mpp_x, mpp_y=None) -> Slide:
    mpp_x = check_mpp(mpp_x)
    mpp_y = check_mpp(mpp_y) if mpp_y not in (None, "") else None
    slide.set_mpp(mpp_x, mpp_y)
    slide.save(update_fields=["mpp_x", "mpp_y", "mpp_source"])
    return slide


WORKLIST = [("to_analyse", "To analyse"), ("to_review", "To review"), ("drafts", "Drafts to sign"),
            ("signed", "Signed")]


def case_worklist(cases, limit: int = 200) -> list[dict]:
    """The pathologist's worklist: cases by where they stand, from their slides, jobs and reports (not
    from Case.status, which only signing moves). A draft (an amendment too) is to sign; a case with a
    finished analysis and no report is to review; one without is to analyse (a job may be running)."""
    from django.db.models import Exists, OuterRef

    from analysis.choices import JobStatus
    from analysis.models import AnalysisJob
    from cases.choices import ReportStatus
    from cases.models import Report

    jobs = AnalysisJob.objects.filter(slide__case=OuterRef("pk"))
    reports = Report.objects.filter(case=OuterRef("pk"))
    cases = cases.annotate(
        has_draft=Exists(reports.filter(status=ReportStatus.DRAFT)),
        has_signed=Exists(reports.filter(status=ReportStatus.SIGNED)),
        has_done=Exists(jobs.filter(status=JobStatus.DONE)),
        has_running=Exists(jobs.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.MERGING])),
        has_slide=Exists(Slide.objects.filter(case=OuterRef("pk"))),
    )[:limit]
    groups = {key: [] for key, _ in WORKLIST}
    for case in cases:
        if case.has_draft:
            groups["drafts"].append(case)
        elif case.has_signed:
            groups["signed"].append(case)
        elif case.has_done:
            groups["to_review"].append(case)
        else:
            case.worklist_note = ("analysis running" if case.has_running else
                                  "slides not analysed yet" if case.has_slide else "no slide yet")
            groups["to_analyse"].append(case)
    return [{"key": key, "label": label, "cases": groups[key]} for key, label in WORKLIST]


def slide_overview(slides) -> list[dict]:
    """Each slide with its latest analysis (any state) and the TPS of its latest finished one: the
    merged result, or the corrected one when pathologists corrected it (cases.results)."""
    from analysis.choices import JobStatus
    from analysis.models import AnalysisJob
    from cases.results import NoResult, ResultUnreadable, job_results

    rows = []
    for slide in slides:
        jobs = AnalysisJob.objects.filter(slide=slide).order_by("-created_at")
        latest, done = jobs.first(), jobs.filter(status=JobStatus.DONE).first()
        tps, corrected = (done.stated_summary.get("tps") if done else None), False  # as reports state it
        if done is not None and job_results().correction_version(done):
            try:
                tps, corrected = job_results().scores(done)["tps"], True
            except ResultUnreadable:  # not the uncorrected number in place of the corrected one
                tps = None
            except NoResult:
                pass
        rows.append({"slide": slide, "job": latest, "done": done, "tps": tps, "corrected": corrected})
    return rows


def do_override_slide_qc(slide: Slide, user, reason: str) -> Slide:
    """A pathologist scores a slide that failed its check: the reason is stored (audited with the
    slide) and printed by every report that slide feeds."""
    from django.core.exceptions import ValidationError

    from cases.access import has_role
    from cases.choices import Role

    if not has_role(user, Role.PATHOLOGIST):
        raise IngestError("Only a pathologist can override a slide's check.")
    try:
        slide.override_qc(user, reason)
    except ValidationError as exc:
        raise IngestError(" ".join(exc.messages)) from None
    slide.save(update_fields=["qc_override_reason", "qc_override_by", "qc_override_at"])
    return slide


def pseudonymous_description(slide: Slide, fields: int | None = None) -> str:
    """How annotators and annotation projects name a slide, e.g. "Slide 3f2a9c01 · Lung squamous cell
    carcinoma · PD-L1 SP263 · 2 fields": the start of its pseudonymous id, the case's indication, the
    marker and clone, and (given) its number of fields; never a patient name, MRN, accession or file name."""
    case = slide.case
    stain = slide.get_marker_display()
    if case is not None and case.assay_clone:
        stain += f" {case.get_assay_clone_display()}"
    parts = [f"Slide {str(slide.pseudo_id)[:8]}"]
    if case is not None:
        parts.append(case.get_indication_display())
    parts.append(stain)
    if fields is not None:
        parts.append(f"{fields} field{'' if fields == 1 else 's'}")
    return " · ".join(parts)


# --- label and macro images -------------------------------------------------------------------------
# The label usually carries the patient's name: pathologists and admins (who see the clinical record)
# may open it, annotators never (they work on pseudonymous slides), nor clinicians (no slide pages).
ASSOCIATED_IMAGE_ROLES = (Role.ADMIN, Role.PATHOLOGIST)


class AssociatedImageMissing(Exception):
    """The slide has no such associated image; the message is meant for the user."""


def check_may_view_associated_images(user) -> None:
    """Raises PermissionDenied unless `user` may see label and macro images (never annotators)."""
    from django.core.exceptions import PermissionDenied

    from cases.access import has_role

    if not has_role(user, *ASSOCIATED_IMAGE_ROLES):
        raise PermissionDenied("Only pathologists and administrators see a slide's label and macro images "
                               "(the label can identify the patient).")


def check_associated_image(slide: Slide, name: str) -> str:
    """`name` if the slide's file holds that label/macro image; else AssociatedImageMissing saying why."""
    if name not in ASSOCIATED_IMAGE_NAMES:
        raise AssociatedImageMissing(f"There is no '{name}' image: a slide may have a label and a macro image.")
    if name not in (slide.associated_images or []):
        raise AssociatedImageMissing(f"This slide has no {name} image: its file ({slide.vendor or slide.format}) "
                                     f"does not store one.")
    return name


def do_read_associated_image(slide: Slide, name: str) -> bytes:
    """The slide's label or macro image as PNG bytes (check_associated_image first)."""
    check_associated_image(slide, name)
    try:
        return read_associated_image(slide.path, name)
    except KeyError:
        raise AssociatedImageMissing(f"This slide's file holds no {name} image.") from None
    except (SlideError, OSError) as exc:
        raise AssociatedImageMissing(f"The {name} image of this slide could not be read: {exc}") from None


def associated_images_of(slide: Slide) -> list[str]:
    """The label/macro images the slide has, in display order (for the slide page and the viewer)."""
    return [name for name in ASSOCIATED_IMAGE_NAMES if name in (slide.associated_images or [])]


def _visible_duplicate(sha256: str, user, case=None) -> Slide | None:
    """The oldest slide with this content that `user` may see (any, for a server-side import with
    no user), the one in `case` first. Deduplicating across departments would hand the uploader
    another department's slide, case and metadata."""
    from cases.access import visible_slides

    candidates = Slide.objects.filter(sha256=sha256)
    if user is not None:
        candidates = candidates.filter(pk__in=visible_slides(user).values("pk"))
    if case is not None:
        in_case = candidates.filter(case=case).order_by("created_at", "pk").first()
        if in_case is not None:
            return in_case
    return candidates.order_by("created_at", "pk").first()


def _stage(sources: list[IngestSource], staging: Path) -> tuple[list[str], int]:
    """Bring every file into the staging folder, hashing as it goes; reject empty files."""
    digests, total = [], 0
    for src in sources:
        target = staging / src.name
        try:
            size = os.path.getsize(src.path)
        except OSError:
            raise IngestError(f"{src.name}: file not found or unreadable") from None
        if size == 0:
            raise IngestError(f"{src.name}: the file is empty (0 bytes)")
        if size > settings.PDL1_SLIDE_UPLOAD_MAX_BYTES:
            raise IngestError(f"{src.name}: larger than the limit of {settings.PDL1_SLIDE_UPLOAD_MAX_BYTES} bytes")
        if src.movable:
            shutil.move(src.path, target)
            digests.append(_sha256_of(target))
        else:
            digests.append(_copy_hashing(src.path, target))
        total += size
    return digests, total


def _copy_hashing(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as fin, open(target, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                digest.update(chunk)
                fout.write(chunk)
    except IsADirectoryError:
        raise IngestError(f"{source.name}: is a directory, not a file") from None
    except OSError as exc:
        raise IngestError(f"{source.name}: cannot read the file ({exc.strerror})") from None
    return digest.hexdigest()


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _series_digest(digests: list[str]) -> str:
    # Independent of file names and upload order: the same series is the same slide.
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


def _main_file(staging: Path, names: list[str]) -> str:
    """The file OpenSlide opens. Any member of a DICOM series finds its siblings; the largest is
    the full-resolution volume, whose name is the one users recognise."""
    return max(sorted(names), key=lambda name: (staging / name).stat().st_size)


def _register(staging, main_name, sha256, total, file_count, info, case, uploaded_by, mpp, marker) -> IngestResult:
    relative_dir = Path("slides") / sha256[:2] / f"{sha256}-{uuid.uuid4().hex[:8]}"
    final_dir = Path(settings.MEDIA_ROOT) / relative_dir
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, final_dir)
    mpp_x, mpp_y, source = info.mpp_x, info.mpp_y, MppSource.SCANNER
    if mpp is not None:
        mpp_x, mpp_y, source = mpp, mpp, MppSource.USER
    elif mpp_x is None:
        source = MppSource.MISSING
    try:
        with transaction.atomic():
            slide = Slide.objects.create(
                case=case,
                file=str(relative_dir / main_name),
                original_name=main_name,
                file_count=file_count,
                sha256=sha256,
                size_bytes=total,
                format=info.format,
                vendor=info.vendor,
                width=info.width,
                height=info.height,
                level_count=info.level_count,
                level_dimensions=info.level_dimensions,
                level_downsamples=info.level_downsamples,
                mpp_x=mpp_x,
                mpp_y=mpp_y,
                mpp_source=source,
                objective_power=info.objective_power,
                marker=marker,
                properties=info.properties,
                associated_images=info.associated_images,
                thumbnail=str(relative_dir / THUMBNAIL_NAME),
                uploaded_by=uploaded_by,
            )
    except BaseException:
        shutil.rmtree(final_dir, ignore_errors=True)
        raise
    log.info("slide %s stored (%s, %dx%d)", slide.pk, info.format, info.width, info.height)
    return IngestResult(slide, created=True)


def check_case_for_user(accession: str, user) -> Case:
    """A case the user may file slides into, by accession number."""
    from cases.access import can_edit_clinical_record, visible_cases

    case = visible_cases(user).filter(accession=accession).first() if user is not None else Case.objects.filter(
        accession=accession).first()
    if case is None or (user is not None and not can_edit_clinical_record(user)):
        raise IngestError(f"no case with accession {accession!r} that you may add slides to")
    return case


# MRNs and accession numbers are unique hospital-wide, so one already registered is refused whoever holds
# it. Refused to someone who may not see its holder, the answer must not say whose or where (that would
# tell another department that this patient is being tested for PD-L1): one text for every such refusal,
# and the attempt is audited as a probe on the record it touched.
MRN_REFUSED = "This MRN cannot be registered here: ask the pathology office."
ACCESSION_REFUSED = "This accession number cannot be registered here: ask the pathology office."


class RegistrationRefused(Exception):
    """An MRN or accession number that cannot be registered; the message is meant for the user.
    `existing` is the record holding it when the user may see that record (pages link to it), else None."""

    def __init__(self, message: str, existing=None):
        super().__init__(message)
        self.existing = existing


# What someone who may see the record holding the number is told instead (with its id, to open it).
_TAKEN_SEEN = {"mrn": "A patient with this MRN is already registered (patient {pk}).",
               "accession": "A case with this accession number already exists (case {pk})."}
_TAKEN_UNSEEN = {"mrn": MRN_REFUSED, "accession": ACCESSION_REFUSED}


def check_mrn_free(mrn: str, user, instance: Patient | None = None) -> str:
    """`mrn`, if no other patient has it; else RegistrationRefused."""
    from cases.access import visible_patients

    return _check_number_free(Patient, "mrn", mrn, user, instance, visible_patients(user))


def check_accession_free(accession: str, user, instance: Case | None = None) -> str:
    """`accession`, if no other case has it; else RegistrationRefused."""
    from cases.access import visible_cases

    return _check_number_free(Case, "accession", accession, user, instance, visible_cases(user))


def _check_number_free(model, field: str, value: str, user, instance, visible) -> str:
    holders = model.objects.filter(**{field: value})
    if instance is not None and instance.pk is not None:
        holders = holders.exclude(pk=instance.pk)  # a record keeps its own number
    existing = holders.first()
    if existing is None:
        return value
    if visible.filter(pk=existing.pk).exists():
        raise RegistrationRefused(_TAKEN_SEEN[field].format(pk=existing.pk), existing)
    _record_probe(existing, user, field, value)
    raise RegistrationRefused(_TAKEN_UNSEEN[field])


def _record_probe(existing, user, field: str, value: str) -> None:
    """Audit a refused registration of another department's number (who, which number, when) on the record
    holding it, as an ACCESS entry: the refusal told the user that the number is taken."""
    from auditlog.models import LogEntry

    LogEntry.objects.log_create(existing, force_log=True, action=LogEntry.Action.ACCESS, actor=user,
                                actor_email=getattr(user, "email", None) or None,
                                additional_data={"probe": f"registration of an existing {field} refused",
                                                 field: value})


def sources_from_uploads(uploads, rename: str | None = None) -> list[IngestSource]:
    """Ingest sources from Django uploaded files (always on disk: see cases.uploads)."""
    if rename is not None and len(uploads) != 1:
        raise IngestError("a name can only be given for a single file")
    sources = []
    for upload in uploads:
        name = rename if rename is not None else upload.name
        if hasattr(upload, "temporary_file_path"):
            sources.append(IngestSource(name=name, path=Path(upload.temporary_file_path()), movable=True))
        else:  # small in-memory uploads (tests, custom handlers): spill to disk first
            spill = Path(settings.FILE_UPLOAD_TEMP_DIR) / f"spill-{uuid.uuid4().hex}"
            spill.parent.mkdir(parents=True, exist_ok=True)
            with open(spill, "wb") as fh:
                for chunk in upload.chunks():
                    fh.write(chunk)
            sources.append(IngestSource(name=name, path=spill, movable=True))
    return sources
