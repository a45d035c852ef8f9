"""Starting, cancelling and retrying analysis jobs: used by pages, the API and analyze_slide."""

from django.db import transaction

from analysis import registry
from analysis.choices import CLASSIC_DETECTOR
from analysis.compartments import DEFAULT_COMPARTMENT, marker_compartment
from analysis.models import AnalysisJob, JobStateError, ModelVersion, software_version
from workers.progress import emit_job_progress
from workers.queue import enqueue, lease_deadline

from workers.parameters import ALLOWED_PARAMETERS, ParameterError  # noqa: F401  (re-exported)
from workers import parameters as _parameters


class JobError(Exception):
    """A job that cannot be started, cancelled or retried as asked; the message is for the user."""


def check_parameters(parameters: dict, slide=None) -> dict:
    """Each parameter in its range (workers.parameters); with a slide, the tile grid bounded too."""
    try:
        checked = _parameters.check_parameters(parameters)
        if slide is not None and (slide.mpp_x or checked.get("mpp")):
            _parameters.check_tile_count(slide, checked)
    except ParameterError as exc:
        raise JobError(str(exc)) from None
    return checked


def _unknown_detector() -> JobError:
    # The same answer for every refused value (not even echoed), whatever exists on the server: a
    # path given here is never looked at, so the answer cannot tell existing files from missing ones.
    names = ", ".join([CLASSIC_DETECTOR, *registry.clinical_models().values_list("name", flat=True)])
    return JobError(f"unknown detector: choose {names} (a model released for clinical use, by name or id)")


def check_detector(value, *, slide, compartment: str = DEFAULT_COMPARTMENT, research: bool = False):
    """(detector label, ModelVersion or None, provenance) for a job on `slide`.

    Clinical jobs (web, API, analysis_job) take only "classic" or a ModelVersion released for
    clinical use and measured on fields of the slide's marker (ModelVersion.marker_refusal: a model of
    unknown marker is refused), by name or id; the research CLI (analyze_slide) also takes research
    models, models of other markers and checkpoint files, recorded with their sha256 (their results never
    feed a signed report: AnalysisJob.research_use_reason)."""
    if value in (None, ""):
        indication = slide.case.indication if slide.case_id else None
        value = registry.default_detector_name(indication, slide.marker)
    value = str(value).strip()
    if value == CLASSIC_DETECTOR:
        from analysis.detectors import ClassicDetector

        return CLASSIC_DETECTOR, None, {"kind": "classic",
                                        "parameters": ClassicDetector(compartment=compartment).parameters()}
    versions = ModelVersion.objects.all() if research else registry.clinical_models()
    by_id = value.isascii() and value.isdigit() and len(value) <= 18  # an id the database can hold
    version = versions.filter(pk=int(value)).first() if by_id else versions.filter(name=value).first()
    if version is not None:
        refusal = "" if research else version.marker_refusal(slide.marker)
        if refusal:  # a Ki-67 model would compute a PD-L1 TPS that could be signed (and the other way round)
            raise JobError(refusal)
        if not version.path().is_file():
            raise JobError(f"model {version.name} is registered but its file is missing from the server")
        return version.name, version, {"kind": "model", "name": version.name, "id": version.pk,
                                       "sha256": version.sha256, "status": version.status,
                                       "origin": version.origin, "architecture": version.architecture}
    if research:
        from pathlib import Path

        path = Path(value)
        if path.is_file():
            path = path.resolve()
            return path.name[:100], None, {"kind": "checkpoint-file", "path": str(path),
                                           "sha256": registry.sha256_file(path)}
        try:
            registry.resolve_detector_path(value)  # its message lists the registered models
        except registry.UnknownDetector as exc:
            raise JobError(str(exc)) from None
    raise _unknown_detector()


def detector_choices(slide) -> list[dict]:
    """What a clinical job on `slide` may run: classic and the models released for clinical use that were
    measured on the slide's marker (check_detector), the default marked (the form preselects it)."""
    indication = slide.case.indication if slide.case_id else None
    default = registry.default_detector_name(indication, slide.marker)
    choices = [{"value": CLASSIC_DETECTOR, "label": "classic (colour deconvolution, no trained weights)"}]
    for version in registry.clinical_models():
        if version.marker_refusal(slide.marker):
            continue
        choices.append({"value": version.name, "label": f"{version.name} ({version.architecture}, sha256 "
                                                        f"{version.sha256[:12]}"
                                                        + (", SYNTHETIC training data" if version.synthetic else "")
                                                        + ")"})
    for choice in choices:
        choice["default"] = choice["value"] == default
        if choice["default"]:
            choice["label"] += " - default"
    return choices


def _model_mpp(version, provenance: dict) -> float:
    if version is not None:
        return float(version.mpp)
    try:  # a checkpoint file (the research CLI): its stored config
        return float(registry.read_checkpoint_config(provenance["path"])["mpp"])
    except (registry.RegistryError, KeyError, TypeError, ValueError) as exc:
        raise JobError(f"the checkpoint's working resolution (mpp) cannot be read: {exc}") from None


SQUARE_PIXEL_TOLERANCE = 0.02  # scanners report x and y a few parts in a thousand apart


def check_upsampling(slide, parameters: dict, name: str, version, provenance: dict, research: bool) -> str:
    """"" or how much the detector's input is enlarged over the slide's pixels ("x2.0", recorded on the job);
    a clinical model job enlarged past UPSAMPLING_LIMIT is refused (workers.pipeline.upsampling, which the
    split runs again against the resolution it really tiles at)."""
    from workers.pipeline import DEFAULTS, PipelineError, upsampling

    slide_mpp = float(parameters.get("mpp") or slide.mpp_x)
    working = float(parameters.get("working_mpp", DEFAULTS["working_mpp"]))
    model_mpp = None if provenance["kind"] == "classic" else _model_mpp(version, provenance)
    try:
        return upsampling(slide_mpp, working, model_mpp, name, refuse=not research)
    except PipelineError as exc:
        raise JobError(str(exc)) from None


def do_start_job(slide, *, user=None, detector: str | None = None, parameters: dict | None = None,
                 research: bool = False) -> AnalysisJob:
    """Queue an analysis. `research=True` (analyze_slide only) also admits research models and paths."""
    parameters = check_parameters(parameters or {}, slide)
    if slide.mpp_x is None and "mpp" not in parameters:
        raise JobError("the slide has no resolution (mpp): set it on the slide, or give mpp")
    if "mpp" not in parameters and slide.mpp_y and abs(slide.mpp_y - slide.mpp_x) > SQUARE_PIXEL_TOLERANCE * slide.mpp_x:
        # Tiling, tissue area and every detector take one pixel size: non-square pixels would squash the
        # nuclei along one axis and misstate the area. Refused rather than analysed wrongly.
        raise JobError(f"the slide's pixels are not square (mpp x {slide.mpp_x:g}, y {slide.mpp_y:g} µm): the analysis "
                       "needs square pixels; correct the resolution on the slide if it was recorded wrongly")
    if "compartment" not in parameters and marker_compartment(slide.marker) != DEFAULT_COMPARTMENT:
        parameters["compartment"] = marker_compartment(slide.marker)  # a Ki-67 slide: the nucleus
    compartment = parameters.get("compartment", DEFAULT_COMPARTMENT)
    if not research and compartment != marker_compartment(slide.marker):
        # A PD-L1 result read in the nucleus would be reported as a PD-L1 TPS (and a Ki-67 one in the
        # membrane): clinical jobs read the marker's own compartment; others are for the research CLI.
        raise JobError(f"compartment {compartment} is not where a {slide.marker or 'unlabelled'} slide's positivity is "
                       f"read ({marker_compartment(slide.marker)}): leave compartment out, or correct the slide's "
                       "marker if it was recorded wrongly (other compartments: research use, analyze_slide)")
    name, version, provenance = check_detector(detector, slide=slide, compartment=compartment, research=research)
    if "working_mpp" not in parameters and provenance["kind"] != "classic":
        # A network reads tiles at the resolution it was trained at: a 0.25 µm model fed 0.5 µm tiles
        # upsampled ×2 sees nuclei it never learnt. Recorded, so the job keeps it; classic keeps 0.5.
        parameters["working_mpp"] = _model_mpp(version, provenance)
        parameters = check_parameters(parameters, slide)  # the tile grid at that resolution, bounded too
    upsampled = check_upsampling(slide, parameters, name, version, provenance, research)
    if research and version is not None:
        # A registered model (clinical ones too) run by the research CLI: the split checks the upsampling again
        # and must know this run was admitted as research (a checkpoint file or classic says so by its kind).
        provenance = {**provenance, "research": True}
    if upsampled:  # a research run (or classic): its results say so
        provenance = {**provenance, "upsampled": upsampled}
    with transaction.atomic():
        job = AnalysisJob.objects.create(slide=slide, detector=name, model_version=version, parameters=parameters,
                                         provenance=provenance, software_version=software_version(),
                                         created_by=user, stage_deadline=lease_deadline())
        emit_job_progress(job)
        transaction.on_commit(lambda: enqueue("workers.tasks.split_job", job.pk))
    return job


def do_cancel_job(job: AnalysisJob) -> AnalysisJob:
    """Remaining batches see the cancelled state and stop without detecting."""
    with transaction.atomic():
        job = AnalysisJob.objects.select_for_update().get(pk=job.pk)
        try:
            job.cancel()
        except JobStateError as exc:
            raise JobError(str(exc)) from None
        job.save()
        emit_job_progress(job)
    return job


def do_retry_job(job: AnalysisJob) -> AnalysisJob:
    with transaction.atomic():
        job = AnalysisJob.objects.select_for_update().get(pk=job.pk)
        try:
            job.reset_for_retry()
        except JobStateError as exc:
            raise JobError(str(exc)) from None
        job.lease_stage(lease_deadline())
        job.save()
        emit_job_progress(job)
        transaction.on_commit(lambda: enqueue("workers.tasks.split_job", job.pk))
    return job
