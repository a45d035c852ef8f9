"""The compute of each pipeline stage, over a job's slide: plain functions, no queue, no locks.

workers.tasks wraps these in django-q2 tasks; analyze_slide calls the same tasks inline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pdl1site.conf import settings

from analysis import detection_store, merge, registry, slide_qc, tiling, tissue
from analysis.choices import CLASSIC_DETECTOR
from analysis.classic import ADAPTIVE_RULE, adaptive_cut
from analysis.detectors import ClassicDetector, ModelDetector, load_detector, resolve_device
from analysis.postprocess import NonFiniteOutputs
from analysis.regions import regions_fingerprint, regions_from_pairs
from analysis.scoring import stated_pct, tps
from slideio.slidefile import SlideError, open_slide

log = logging.getLogger(__name__)

DEFAULTS = {"tile_px": 512, "overlap_px": 64, "batch_size": 8, "working_mpp": 0.5, "compartment": "membrane",
            "dedupe_radius_um": 3.0}


class PipelineError(Exception):
    """A job that cannot go on; the message is shown to the user."""


@dataclass
class Plan:
    tiles: list[tiling.Tile]
    batches: list[list[dict]]
    tissue_area_mm2: float
    qc: dict  # analysis.slide_qc's findings, and the tissue threshold the detect stage filters points with
    mpp: float = 0.0  # the slide resolution the tiles were cut at (recorded on the job: merge uses the same)
    upsampled: str = ""  # how much the detector's input is enlarged over those pixels (upsampling()), "" if not


def job_parameters(job) -> dict:
    return {**DEFAULTS, **job.parameters}


def slide_mpp(job) -> float:
    """The resolution to cut tiles at: the job's mpp parameter, else the slide's (as it is now)."""
    mpp = job.parameters.get("mpp") or job.slide.mpp_x
    if not mpp:
        raise PipelineError("the slide has no resolution (mpp): set it on the slide before analysis")
    return float(mpp)


@functools.lru_cache(maxsize=8)
def _open_cached(path: str, mtime_ns: int):
    return open_slide(path)


def open_job_slide(job):
    """Each worker process keeps a few slides open: reopening costs more than reading a tile."""
    path = job.slide.path
    try:
        return _open_cached(path, os.stat(path).st_mtime_ns)
    except FileNotFoundError:
        raise PipelineError("the slide file is missing from storage") from None
    except SlideError as exc:
        raise PipelineError(f"the slide cannot be read: {exc}") from None


# A model's input may be enlarged over the slide's own pixels by at most this much (scanners' "0.25 µm" run
# from 0.22 to 0.27): beyond, a clinical job would count nuclei blurrier than any the model was validated on.
UPSAMPLING_LIMIT = 1.10


def upsampling(slide_mpp: float, working: float, model_mpp: float | None, name: str, *, refuse: bool) -> str:
    """"" or how much the detector's input is enlarged over the slide's pixels ("x2.0", recorded on the job).

    Tiles are read at working_mpp (upsampled from a coarser slide: analysis.tiling) and a network resizes
    them to its own mpp (ModelDetector.detect), so it sees the coarser of slide and working pixels at its
    resolution. Past UPSAMPLING_LIMIT a model job is refused (PipelineError) when `refuse` (clinical jobs).
    Classic (model_mpp None) has no trained resolution: recorded, never refused (the demo's 0.65 µm slide)."""
    if model_mpp is None:
        factor = slide_mpp / working
    else:
        factor = max(slide_mpp, working) / model_mpp
        if factor > UPSAMPLING_LIMIT and refuse:
            cause = (f"the slide's resolution is {slide_mpp:g} µm/px" if slide_mpp >= working
                     else f"working_mpp is {working:g} µm/px")
            raise PipelineError(f"{cause}, coarser than the {model_mpp:g} µm/px model {name} reads: it would count "
                                f"nuclei on tiles upsampled x{round(factor, 2)}, blurrier than any it was validated "
                                "on; use classic or a model for this resolution (and leave working_mpp out), or "
                                "correct the slide's resolution if it was recorded wrongly (research runs: "
                                "analyze_slide)")
    # Within analysis.tiling's level tolerance a nominal match is read as it is: nothing to record.
    return f"x{round(factor, 2)}" if factor > tiling.LEVEL_TOLERANCE else ""


def check_job_upsampling(job, mpp: float) -> str:
    """upsampling() for the slide resolution the split really tiles at. The start checked the slide's mpp as it
    was then; it may have been corrected since (before the split ran, or before a Retry), so the split checks
    again: a clinical job is refused as at start, a research run or classic records the factor it really ran at.
    Research runs: started by analyze_slide (provenance "research") or a model not usable clinically."""
    recorded = job.provenance or {}
    if _is_classic(job):
        model_mpp = None
    elif job.model_version is not None:
        model_mpp = float(job.model_version.mpp)
    elif recorded.get("kind") == "checkpoint-file":  # the research CLI: the checkpoint's stored config
        try:
            model_mpp = float(registry.read_checkpoint_config(recorded["path"])["mpp"])
        except (registry.RegistryError, KeyError, TypeError, ValueError) as exc:
            raise PipelineError(f"the checkpoint's working resolution (mpp) cannot be read: {exc}") from None
    else:  # a job queued before provenance was recorded: its detector's resolution is not known here
        return recorded.get("upsampled", "")
    research = bool(recorded.get("research")) or bool(job.research_use_reason())
    working = float(job_parameters(job)["working_mpp"])
    return upsampling(mpp, working, model_mpp, job.detector, refuse=not research)


def plan_job(job) -> Plan:
    """Tissue mask, then the tile grid at the detector's working resolution, in batches."""
    params = job_parameters(job)
    mpp = slide_mpp(job)
    upsampled = check_job_upsampling(job, mpp)
    slide = open_job_slide(job)
    try:
        mask = tissue.tissue_mask(slide, slide_mpp=mpp, keep_image=True)
    except Exception as exc:  # OpenSlide/tifffile raise their own types from read_region
        raise PipelineError(f"the slide cannot be read: {exc}") from None
    qc = {**slide_qc.check_mask(mask).as_dict(), "tissue_threshold_od": mask.threshold_od}
    if not mask.mask.any():
        raise PipelineError("no tissue found on the slide")
    tiles = tiling.tile_grid(slide.level_dimensions, slide.level_downsamples, slide_mpp=mpp,
                             working_mpp=params["working_mpp"], tile_px=params["tile_px"],
                             overlap_px=params["overlap_px"], mask=mask, band_px=ownership_band_px(params))
    if not tiles:
        raise PipelineError("no tissue found on the slide")
    as_dicts = [dataclasses.asdict(tile) for tile in tiles]
    size = max(1, int(params["batch_size"]))
    batches = [as_dicts[i:i + size] for i in range(0, len(as_dicts), size)]
    return Plan(tiles=tiles, batches=batches, tissue_area_mm2=float(mask.area_mm2), qc=qc, mpp=mpp,
                upsampled=upsampled)


def ownership_band_px(params: dict) -> float:
    """Working px a tile keeps past a shared core border: at most half the merge's dedupe radius, so
    that one nucleus both neighbours keep is merged into one point (analysis.tiling)."""
    return min(tiling.OWNERSHIP_BAND_PX, 0.5 * params["dedupe_radius_um"] / params["working_mpp"])


@dataclass
class BatchDetections:
    xy: np.ndarray  # float32 (N, 2), level-0 pixels
    labels: np.ndarray  # int8
    scores: np.ndarray  # float32
    seconds: float
    marker: np.ndarray | None = None  # float32: classic's compartment DAB per cell (the slide's cut at merge)
    # Where and in what the batch was computed (gpu_runtime.describe_device, network_precision): a CUDA
    # worker runs networks in bf16, a CPU one in fp32, and the points can differ between the two.
    device: str = "cpu"
    precision: str = ""


def detect_batch(job, tile_dicts: list[dict]) -> BatchDetections:
    """Read this batch's tiles from the slide, detect, keep points in each tile's core (level 0) that lie
    on the tile's own tissue (analysis.tissue.on_tissue: never on glass)."""
    params = job_parameters(job)
    recorded = job.provenance or {}  # jobs split before it was recorded: the slide's
    tissue_od = recorded["tissue_threshold_od"] if "tissue_threshold_od" in recorded else (
        (job.slide.qc or {}).get("tissue_threshold_od"))
    detector = load_job_detector(job, params["compartment"])
    slide = open_job_slide(job)
    started = time.perf_counter()
    if _use_gpu_stream(detector, params):
        from workers.gpu_runtime import NonFiniteTiles, TileReadError, stream_detector_for

        try:
            found = stream_detector_for(detector, **stream_settings(detector)).detect_tiles(
                job.slide.path, tile_dicts, level_downsamples=slide.level_downsamples, tile_mpp=params["working_mpp"],
                tissue_od=tissue_od)
        except TileReadError as exc:
            raise PipelineError(str(exc)) from None
        except NonFiniteTiles as exc:
            raise _non_finite_outputs(exc.tiles) from None
        return BatchDetections(xy=found.xy, labels=found.labels, scores=found.scores,
                               seconds=time.perf_counter() - started, device=compute_device_label(found.device),
                               precision=found.precision)
    device, precision = _tile_by_tile_compute(detector)
    xys, labels, scores, markers = [], [], [], []
    non_finite = []
    for tile in (tiling.Tile(**d) for d in tile_dicts):
        try:
            rgb = tiling.read_tile(slide, tile)
        except Exception as exc:  # OpenSlide/tifffile raise their own types on damaged data
            raise PipelineError(f"tile {tile.index} could not be read: {exc}") from None
        try:
            found = detector.detect(rgb, params["working_mpp"])
        except NonFiniteOutputs:
            non_finite.append(tile.index)  # the batch's others too, so that the message names them all
            continue
        xy0 = tiling.to_level0(tile, found.xy, slide.level_downsamples)
        keep = tiling.in_core(tile, xy0) & tissue.on_tissue(rgb, found.xy, tissue_od)
        xys.append(xy0[keep])
        labels.append(np.asarray(found.labels)[keep])
        scores.append(np.asarray(found.scores)[keep])
        if found.marker is not None:
            markers.append(np.asarray(found.marker)[keep])
    if non_finite:
        raise _non_finite_outputs(non_finite)
    return BatchDetections(
        xy=np.concatenate(xys).astype(np.float32) if xys else np.zeros((0, 2), np.float32),
        labels=np.concatenate(labels).astype(np.int8) if labels else np.zeros(0, np.int8),
        scores=np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32),
        seconds=time.perf_counter() - started,
        marker=np.concatenate(markers).astype(np.float32) if markers and len(markers) == len(xys) else None,
        device=device, precision=precision,
    )


CLASSIC_PRECISION = "classic (numpy, no network)"


def _tile_by_tile_compute(detector) -> tuple[str, str]:
    """(device, precision) of the tile-by-tile path: ModelDetector.detect runs analysis.postprocess.predict,
    bf16 on CUDA and fp32 on CPU; classic runs on the CPU without a network."""
    if not isinstance(detector, ModelDetector):
        return "cpu", CLASSIC_PRECISION
    from workers.gpu_runtime import configure_deterministic_cuda, network_precision

    device = resolve_device(detector.device)
    if device.startswith("cuda"):
        configure_deterministic_cuda()  # as the stream does: no cuDNN autotuning
    return compute_device_label(device), network_precision(device)


def compute_device_label(device: str) -> str:
    """gpu_runtime.describe_device of the device a batch ran on, with its index: "cuda", "cuda:0" and the stream's
    "cuda:0 (NVIDIA H200)" are one GPU, so detect_compute counts them under one entry ("cuda:0 (NVIDIA H200)")
    rather than one per path (tile by tile, stream, an empty stream batch that never prepared its device)."""
    if device == "cpu":
        return device
    import torch

    from workers.gpu_runtime import describe_device

    try:
        parsed = torch.device(str(device).split(" (", 1)[0])
    except (RuntimeError, ValueError):  # not a torch device name: kept as it was recorded
        return device
    if parsed.type == "cuda" and parsed.index is None:  # "cuda" runs on the current device
        parsed = torch.device("cuda", torch.cuda.current_device())
    return describe_device(parsed)


def record_batch_compute(provenance: dict | None, found: BatchDetections) -> dict:
    """The job's provenance with this batch counted under its (device, precision) in "detect_compute": every
    combination its batches ran with, and how many batches each (a batch's own file records its own)."""
    entries = [dict(entry) for entry in (provenance or {}).get("detect_compute", [])]
    for entry in entries:
        if (entry["device"], entry["precision"]) == (found.device, found.precision):
            entry["batches"] += 1
            break
    else:
        entries.append({"device": found.device, "precision": found.precision, "batches": 1})
    entries.sort(key=lambda entry: (entry["device"], entry["precision"]))
    return {**(provenance or {}), "detect_compute": entries}


def _non_finite_outputs(tiles: list[int]) -> PipelineError:
    """NaN or infinite probabilities lose those tiles' cells without a word (a NaN fails its whole peak
    window): the job fails instead of completing with a count that misses them."""
    shown = ", ".join(map(str, tiles[:10])) + (f" and {len(tiles) - 10} more" if len(tiles) > 10 else "")
    return PipelineError(f"the model produced non-finite outputs on tiles {shown} (NaN or infinite probabilities): "
                         "their cells cannot be counted, so the job stopped rather than report a count without them; "
                         "check the model's weights (a model version that gives these is broken)")


def load_job_detector(job, compartment: str):
    """The detector the job recorded, and only that: a checkpoint whose sha256 is not the recorded
    one (replaced on disk) stops the job instead of running unrecorded weights."""
    kind = job.provenance.get("kind")
    if _is_classic(job):
        return _recorded_classic(job, compartment)
    if kind == "model" or job.model_version_id:
        source, expected = str(job.model_version.path()), job.model_version.sha256
    elif kind == "checkpoint-file":
        source, expected = job.provenance["path"], job.provenance["sha256"]
    else:  # a job queued before provenance was recorded
        source, expected = job.detector, None
    try:
        detector = load_detector(source, compartment=compartment)
    except Exception as exc:  # noqa: BLE001  torch raises many types (UnpicklingError, IndexError, ...)
        raise PipelineError(f"the detector {job.detector} could not be loaded: {type(exc).__name__}: {exc}") from None
    if expected and getattr(detector, "sha256", None) != expected:
        raise PipelineError(f"the weights of {job.detector} on disk (sha256 {detector.sha256[:12]}) are not the "
                            f"recorded ones ({expected[:12]}): register the new file as a new model version")
    return detector


def _recorded_classic(job, compartment: str) -> ClassicDetector:
    """Classic with the parameters the job recorded when it was queued (analysis.detectors
    .ClassicDetector.parameters), not the code's defaults at detect and merge (an upgrade in between);
    jobs queued before they were recorded: the defaults."""
    from analysis.classic import ClassicParams
    from analysis.stains import DEFAULT_VECTORS, StainVectors

    default = ClassicDetector(compartment=compartment)
    recorded = (job.provenance or {}).get("parameters")
    if not recorded:
        return default
    names = {f.name for f in dataclasses.fields(ClassicParams)} - {"vectors"}
    vectors = recorded.get("stain_vectors")
    if vectors and vectors != default.parameters()["stain_vectors"]:  # the defaults' own, exact: not recomputed
        vectors = StainVectors(**{k: None if v is None else tuple(v) for k, v in vectors.items()})
    else:
        vectors = DEFAULT_VECTORS
    params = ClassicParams(**{k: v for k, v in recorded.items() if k in names}, vectors=vectors)
    return ClassicDetector(compartment=compartment, params=params)


def _is_classic(job) -> bool:
    kind = job.provenance.get("kind")
    return kind == "classic" or (not kind and job.detector == CLASSIC_DETECTOR)


def _adaptive_classic(job, params) -> bool:
    """A classic job whose cut comes from the slide's cells (its detector is cheap to build)."""
    return _is_classic(job) and load_job_detector(job, params["compartment"]).adaptive


def _use_gpu_stream(detector, params) -> bool:
    """Networks on a GPU (or the PDL1_GPU_STREAM setting) stream tiles through workers.gpu_runtime: reader
    processes, pinned copies overlapped with compute, peaks and NMS on the GPU. The stream runs a
    tile in one forward pass, so it needs tiles no larger than the detector's own once resampled to the
    model's resolution (ModelDetector.detect splits a larger one, and the two paths' points differ)."""
    if not isinstance(detector, ModelDetector) or _tile_px_at_model_mpp(detector, params) > detector.tile:
        return False
    return (settings.PDL1_GPU_STREAM or settings.PDL1_GPU_INDEX is not None
            or resolve_device(detector.device).startswith("cuda"))


def _tile_px_at_model_mpp(detector: ModelDetector, params) -> int:
    """The size ModelDetector.detect resamples a job's tile to (analysis.detectors.resize_rgb): tile_px
    working px at the model's own mpp (a 512 px tile at 0.5 µm is 1024 px to a 0.25 µm model)."""
    tile_px, scale = int(params["tile_px"]), float(params["working_mpp"]) / detector.working_mpp
    return tile_px if abs(scale - 1.0) < 1e-6 else max(1, int(round(tile_px * scale)))


def stream_settings(detector) -> dict:
    """The GPU stream's settings (README, "Configuration"): reader processes, batch size, compile
    and its cache folder, and the device when the detector's is "auto"."""
    from workers.gpu_runtime import DEFAULT_COMPILE_MODE, device_for_worker

    found = {"readers": settings.PDL1_GPU_READERS, "batch_size": settings.PDL1_GPU_BATCH,
             "compile": settings.PDL1_TORCH_COMPILE,
             "compile_mode": settings.PDL1_TORCH_COMPILE_MODE or DEFAULT_COMPILE_MODE,
             "compile_cache": settings.PDL1_COMPILE_CACHE or Path(settings.MEDIA_ROOT) / "torch-compile-cache"}
    if getattr(detector, "device", "auto") == "auto":
        found["device"] = device_for_worker(settings.PDL1_WORKER_INDEX, gpu_index=settings.PDL1_GPU_INDEX)
    return found


def job_folder(job) -> Path:
    """Where this attempt of the job writes: one folder per attempt, because a batch or merge of a
    cancelled attempt can still be computing when the retry runs, and would otherwise overwrite the
    retry's file of the same name (its tiles may differ: the mpp or parameters can change between)."""
    return Path(settings.MEDIA_ROOT) / "results" / f"job-{job.pk}" / f"attempt-{job.attempt}"


def write_batch_file(job, index: int, found: BatchDetections) -> str:
    """Atomically (re)write one batch's points; a rerun replaces, never duplicates."""
    folder = job_folder(job)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"batch-{index:05d}.npz"
    extra = {} if found.marker is None else {"marker": found.marker}
    extra.update(device=np.array(found.device), precision=np.array(found.precision))
    # A name of its own (MEDIA_ROOT is shared by machines, whose workers can have the same pid, and two
    # can compute one batch after a lease ran out), on disk before it replaces the batch's file.
    fd, partial = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, xy=found.xy, labels=found.labels, scores=found.scores, **extra)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    return str(final.relative_to(settings.MEDIA_ROOT))


def remove_late_batch_file(job, result_file: str) -> None:
    """A batch file written after its job was merged (a second copy of the batch, whose lease had run out,
    finished late): removed, as the merge removed the first; only inside this attempt's folder."""
    path = Path(settings.MEDIA_ROOT) / result_file
    if path.parent == job_folder(job):
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("late batch file %s not removed: %s", path, exc)


def remove_leftovers(job, batch_files: list[str]) -> None:
    """After the merge committed: the batch files (about 1.7 times the store; only this attempt's merge
    reads them, a new run or a retry computes its own) and the folders of the job's earlier attempts
    (superseded: the job's result is this attempt's store)."""
    folder = job_folder(job)
    for name in batch_files:
        path = Path(settings.MEDIA_ROOT) / name
        if path.parent == folder:  # this attempt's own, never another's
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # the job's result stands; the sweep does not look for these
                log.warning("batch file %s not removed: %s", path, exc)
    for earlier in folder.parent.glob("attempt-*"):
        number = earlier.name.removeprefix("attempt-")
        if number.isdigit() and int(number) < job.attempt:
            shutil.rmtree(earlier, onerror=lambda *args: log.warning("%s not removed: %s", args[1], args[2][1]))


def merge_job(job, batch_files: list[str]) -> tuple[str, dict]:
    """Merge every batch, store all detections compactly, and summarise counts and TPS."""
    params = job_parameters(job)
    # The resolution this attempt's tiles were cut at (recorded at split): the slide's mpp may have been
    # set again since, and the dedupe radius, the store's mpp and the interval's blocks must match the tiles.
    mpp = float((job.provenance or {}).get("tiled_at_mpp") or slide_mpp(job))
    parts, markers = [], []
    for name in batch_files:
        with np.load(Path(settings.MEDIA_ROOT) / name) as data:
            parts.append((data["xy"], data["labels"], data["scores"]))
            markers.append(data["marker"] if "marker" in data.files else None)
    merged = merge.merge_detections(parts, dedupe_radius_px=params["dedupe_radius_um"] / mpp)
    slide_cut, cut_regions = None, ""
    if _adaptive_classic(job, params) and all(m is not None for m in markers):
        # The slide's own positivity cut, from the cells its drawn regions count (every cell when it has
        # none, or none of its cells lies inside them): cells in excluded necrosis or outside the tumour
        # area would otherwise move the cut of the cells that are counted. The regions read are recorded,
        # so the viewer and the report can say when the regions changed since (viewer.scores).
        marker = np.concatenate([np.asarray(m, np.float32).reshape(-1) for m in markers])[merged.kept]
        pairs = _slide_regions(job)
        scope = regions_from_pairs(pairs).mask(merged.xy) if pairs else np.ones(len(marker), bool)
        cut_regions = regions_fingerprint(pairs)  # recorded also when they count no cell: a re-run would not differ
        if not scope.any():  # the regions count no cell (they count nothing then): the whole slide's cells
            scope = np.ones(len(marker), bool)
        # The rule as recorded when the job was queued (jobs from before: the code's, as detect_classic's).
        rule = ((job.provenance or {}).get("parameters") or {}).get("adaptive_rule")
        slide_cut = adaptive_cut(marker[scope], *(rule or ADAPTIVE_RULE[params["compartment"]]))
        merged.labels = np.where(marker > slide_cut, merge.POSITIVE, merge.NEGATIVE).astype(np.int8)
    store = job_folder(job) / "detections.store"
    detection_store.write_store(store, merged.xy, merged.labels, merged.scores,
                                width=job.slide.width, height=job.slide.height, mpp=mpp)
    counts = merge.counts(merged.labels)
    summary = {"counts": counts, "tps": stated_pct(tps(counts["positive"], counts["negative"])),
               "detections": int(len(merged.labels))}
    if slide_cut is not None:
        summary["dab_threshold"] = round(float(slide_cut), 4)
        summary["dab_threshold_regions"] = cut_regions  # "": read from the whole slide
    return str(store.relative_to(settings.MEDIA_ROOT)), summary


def _slide_regions(job) -> list[tuple[bool, list]]:
    """The slide's active drawn regions as (include?, vertices), through cases.results (the viewer provides
    them; the pipeline sits below it); none where no provider is registered (plain-Python use)."""
    from cases.results import NoProvider, job_results

    try:
        return list(job_results().regions(job))
    except NoProvider:
        return []
