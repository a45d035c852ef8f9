"""GPU worker runtime: stream a slide's tiles through a point-detector network at full speed.

TileStreamDetector takes a ModelDetector's network and config and a list of tiling.Tile of one
slide, and returns the level-0 points each tile keeps (tiling.to_level0 + tiling.in_core), exactly
as workers.pipeline.detect_batch does with ModelDetector.detect tile by tile - but:

* a pool of reader processes (``fork`` on Linux; each opens the slide once with
  slideio.slidefile.open_slide) decodes tiles with analysis.tiling.read_tile into shared-memory
  slots ahead of the GPU, so the GPU does not wait for JPEG decoding;
* on CUDA: batches are copied into pinned host buffers and sent with non_blocking copies on a
  side stream (double buffering, CUDA events), so the copy of batch i+1 overlaps the network on
  batch i; the network runs in bf16 autocast and channels_last, with deterministic cuDNN algorithms
  (configure_deterministic_cuda: no benchmark autotuning); softmax, peak finding and NMS
  (analysis.postprocess.extract_points) run on the GPU on a third stream while the next batch's
  forward pass is already queued, and only the points come back to the host;
* optional torch.compile (``compile=True``) of normalisation + network + softmax; compiled
  artefacts are cached on disk (TORCHINDUCTOR_CACHE_DIR, FX graph cache) so a worker restart or a
  second worker reuses them - see configure_compile_cache();
* on CPU the same code path runs in fp32, without pinned memory or streams, and gives exactly
  the points of ModelDetector.detect applied tile by tile (tests/workers/test_gpu_runtime.py).

One worker process per GPU.  device_for_worker() picks the GPU: the settings' PDL1_GPU_INDEX if set,
else the worker index (PDL1_WORKER_INDEX) modulo the number of visible GPUs (workers.pipeline passes
them; this module reads no environment variable or setting of its own).  The simplest deployment on a
machine with N GPUs is one qcluster per GPU, each seeing only its own card:

    for i in $(seq 0 $((N - 1))); do CUDA_VISIBLE_DEVICES=$i python manage.py qcluster & done

(each process then sees one GPU, cuda:0).  Alternatively leave CUDA_VISIBLE_DEVICES unset and give
each process PDL1_GPU_INDEX=i.  Keep one detect worker per qcluster on a GPU machine
(Q_CLUSTER workers=1): the reader pool supplies the CPU parallelism.

Nothing here imports Django or torch at module import; bench/gpu_throughput.py uses this module
on a machine without Django.
"""

from __future__ import annotations

import math
import mmap
import multiprocessing
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis import tiling, tissue

DEFAULT_COMPILE_MODE = "max-autotune-no-cudagraphs"


# --------------------------------------------------------------------------- device and compile cache

def device_for_worker(worker_index: int | None = None, device_count: int | None = None,
                      gpu_index: int | None = None) -> str:
    """The torch device for this worker process: "cuda:i" or "cpu".

    gpu_index=i (the PDL1_GPU_INDEX setting) pins the process to visible GPU i; otherwise the worker
    index (PDL1_WORKER_INDEX, else 0) modulo the number of visible GPUs.  With CUDA_VISIBLE_DEVICES=i
    per process, each process sees one GPU and gets cuda:0.  No visible GPU: "cpu".
    """
    if device_count is None:
        try:
            import torch

            device_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        except ImportError:
            device_count = 0
    if device_count <= 0:
        return "cpu"
    if gpu_index is not None:
        if not 0 <= int(gpu_index) < device_count:
            raise ValueError(f"PDL1_GPU_INDEX={gpu_index} but only {device_count} GPU(s) are visible")
        return f"cuda:{int(gpu_index)}"
    return f"cuda:{int(worker_index or 0) % device_count}"


def default_compile_cache() -> Path:
    """Where compiled artefacts go when no folder is given (workers.pipeline gives the setting's)."""
    return Path.home() / ".cache" / "pdl1" / "torch-compile-cache"


def configure_compile_cache(folder=None) -> Path:
    """Point TorchInductor's on-disk caches at a persistent folder; returns the folder in use.

    An explicit TORCHINDUCTOR_CACHE_DIR in the environment wins (and is returned).  The FX graph
    and AOT autograd caches are switched on, so a restarted worker loads compiled kernels instead
    of re-running autotuning.  Call before the first torch.compile of the process.
    """
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR") and folder is None:
        path = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    else:
        path = Path(folder) if folder is not None else default_compile_cache()
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    path.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    os.environ.setdefault("TRITON_CACHE_DIR", str(path / "triton"))
    inductor_config = sys.modules.get("torch._inductor.config")
    if inductor_config is not None:  # already imported: its env defaults were read, set them directly
        inductor_config.fx_graph_cache = True
    return path


def configure_deterministic_cuda() -> None:
    """Make a batch's probabilities on CUDA depend on its pixels, not on the run: cuDNN's autotuner
    (benchmark) picks convolution algorithms by timing them, so one batch could sum in another order on
    another run or machine. Ops without a deterministic kernel warn rather than fail the job
    (warn_only). cuBLAS reads its workspace setting when it starts: set it before the first matmul."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def describe_device(device) -> str:
    """The device as a job records it: "cpu", or "cuda:0 (NVIDIA H200)" (the kind of GPU changes the
    numbers, its index does not)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    return f"{device} ({torch.cuda.get_device_name(device)})"


def network_precision(device, autocast: bool = True) -> str:
    """What a network computes in here and in analysis.postprocess.predict: bf16 autocast on CUDA, fp32 elsewhere."""
    return "bf16" if str(device).startswith("cuda") and autocast else "fp32"


# --------------------------------------------------------------------------- reader pool

# The reader state of a reader process (one pool's slide); a pool that reads in the calling process
# (readers=0) keeps its own (ReaderPool._local): one worker process holds a stream per model, each
# on its own slide, and a module-wide state let one job's tiles be read from another job's slide.
_READER: dict = {}


def _open_reader(path: str, opener, slots, slot_shape, resample_scale: float) -> dict:
    if opener is None:
        from slideio.slidefile import open_slide as opener
    return {"slide": opener(path), "slots": slots, "shape": slot_shape, "scale": resample_scale}


def _reader_init(path: str, opener, slots, slot_shape, resample_scale: float) -> None:
    """Initialiser of a reader process."""
    _READER.clear()
    _READER.update(_open_reader(path, opener, slots, slot_shape, resample_scale))


def _read(tile: tiling.Tile, reader: dict | None = None) -> np.ndarray:
    """Decode `tile` with `reader`'s slide (a reader process: its own _READER)."""
    reader = _READER if reader is None else reader
    rgb = tiling.read_tile(reader["slide"], tile)
    if reader.get("scale", 1.0) != 1.0:
        from analysis.detectors import resize_rgb

        rgb = resize_rgb(rgb, reader["scale"])
    return rgb


def _read_into_slot(tile: tiling.Tile, slot: int):
    """In a reader: decode one tile into shared slot `slot`; returns its (h, w), or the array without slots."""
    try:
        rgb = _read(tile)
    except Exception as exc:  # OpenSlide/tifffile raise their own types on damaged data
        return ("error", f"tile {tile.index} could not be read: {exc}")
    slots = _READER["slots"]
    if slots is None:
        return ("array", rgb)
    h, w = rgb.shape[:2]
    sh, sw = _READER["shape"]
    if h > sh or w > sw:
        return ("array", rgb)
    view = _slot_view(slots, slot, _READER["shape"])
    view[:h, :w] = rgb
    return ("slot", (h, w))


def _slot_view(buffer, slot: int, shape) -> np.ndarray:
    h, w = shape
    size = h * w * 3
    return np.frombuffer(buffer, np.uint8, count=size, offset=slot * size).reshape(h, w, 3)


class TileReadError(Exception):
    """A tile could not be decoded; the message names it."""


class NonFiniteTiles(Exception):
    """The network's probabilities on these tiles (Tile.index) held NaN or infinity."""

    def __init__(self, tiles: list[int]):
        self.tiles = list(tiles)
        super().__init__(f"non-finite outputs on tiles {', '.join(map(str, self.tiles))}")


class ReaderPool:
    """N processes, each with the slide open, decoding tiles into shared-memory slots.

    readers=0 reads in the calling process (no pool).  With ``fork`` the slots are one anonymous
    shared mapping inherited by the readers, so a decoded tile crosses no pipe; with another start
    method tiles come back pickled.
    """

    def __init__(self, path, readers: int, slot_shape: tuple[int, int], n_slots: int, opener=None,
                 resample_scale: float = 1.0, start_method: str | None = None):
        self.path, self.readers, self.slot_shape, self.n_slots = str(path), int(readers), tuple(slot_shape), n_slots
        self._pool = None
        self._slots = None
        self._local = None
        if self.readers <= 0:
            self._local = _open_reader(self.path, opener, None, self.slot_shape, resample_scale)
            return
        method = start_method or ("fork" if sys.platform.startswith("linux") else None)
        ctx = multiprocessing.get_context(method)
        if ctx.get_start_method() == "fork":
            h, w = self.slot_shape
            self._slots = mmap.mmap(-1, max(n_slots * h * w * 3, 1))  # MAP_SHARED | MAP_ANONYMOUS
        self._pool = ctx.Pool(self.readers, initializer=_reader_init,
                              initargs=(self.path, opener, self._slots, self.slot_shape, resample_scale))

    def submit(self, tile: tiling.Tile, slot: int):
        if self._pool is None:
            return _LocalResult(tile, self._local)
        return self._pool.apply_async(_read_into_slot, (tile, slot))

    def take(self, result, slot: int) -> np.ndarray:
        """The decoded tile of a submitted read (a view of its slot: copy before reusing the slot)."""
        kind, value = result.get()
        if kind == "error":
            raise TileReadError(value)
        if kind == "array":
            return value
        h, w = value
        return _slot_view(self._slots, slot, self.slot_shape)[:h, :w]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        if self._slots is not None:
            try:
                self._slots.close()
            except BufferError:  # a failed call's tiles (views of the slots) are still referenced, by its
                pass  # traceback: the mapping goes with them, and no reader writes into it any more
            self._slots = None
        if self._local is not None:
            close = getattr(self._local["slide"], "close", None)
            if close is not None:
                close()
            self._local = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _LocalResult:
    """A read in the calling process, through its pool's own reader state."""

    def __init__(self, tile, reader: dict):
        self.tile, self.reader = tile, reader

    def get(self):
        try:
            return ("array", _read(self.tile, self.reader))
        except Exception as exc:
            return ("error", f"tile {self.tile.index} could not be read: {exc}")


# --------------------------------------------------------------------------- the stream detector

@dataclass
class StreamResult:
    xy: np.ndarray  # float32 (N, 2) level-0 px, tiles in input order
    labels: np.ndarray  # int8
    scores: np.ndarray  # float32
    tiles: int = 0
    batches: int = 0
    seconds: float = 0.0
    timings_s: dict = field(default_factory=dict)  # read_wait, host_copy, postprocess, ...
    device: str = ""  # describe_device: where the network ran
    precision: str = ""  # network_precision: "bf16" or "fp32"


class TileStreamDetector:
    """Batched, pipelined inference of a point detector over the tiles of one slide.

    ``model``/``config`` as in analysis.detectors.ModelDetector (from_detector() takes one).
    ``tile_mpp`` (detect_tiles) is the µm/px the tiles are read at (the job's working_mpp); when it
    differs from config.mpp, readers resample like ModelDetector.detect does.
    """

    def __init__(self, model, config, device: str | None = None, batch_size: int = 32, readers: int = 0,
                 compile: bool = False, compile_mode: str | None = DEFAULT_COMPILE_MODE, compile_cache=None,
                 nms_radius_um: float = 3.0, min_score: float = 0.5, autocast: bool = True,
                 prefetch_batches: int = 3, opener=None, start_method: str | None = None,
                 post_threads: int = 1):
        self.model, self.config = model, config
        self.device_name = device or device_for_worker()
        self.batch_size = max(1, int(batch_size))
        self.readers = max(0, int(readers))
        self.compile, self.compile_mode = bool(compile), compile_mode
        self.nms_radius_um, self.min_score, self.autocast = nms_radius_um, min_score, autocast
        self.prefetch_batches = max(1, int(prefetch_batches))
        self.opener, self.start_method = opener, start_method
        # CUDA only: peaks/NMS of batch i run in a helper thread (on their own stream) while the
        # main thread copies and launches batch i + 1; 0 runs them inline.
        self.post_threads = max(0, int(post_threads))
        self.compile_cache = configure_compile_cache(compile_cache) if self.compile else None
        self._infer = None
        self._prepared_device = None
        self.device_label = self.device_name  # describe_device's, once prepared
        self._pool: ReaderPool | None = None
        self._pool_key = None
        self._tissue_od = None  # the slide's tissue threshold (summed OD), per detect_tiles call

    @classmethod
    def from_detector(cls, detector, **kwargs) -> TileStreamDetector:
        kwargs.setdefault("nms_radius_um", detector.nms_radius_um)
        kwargs.setdefault("min_score", detector.min_score)
        if "device" not in kwargs and getattr(detector, "device", "auto") != "auto":
            kwargs["device"] = detector.device
        return cls(detector.model, detector.config, **kwargs)

    # ------------------------------------------------------------------ model preparation

    @property
    def working_mpp(self) -> float:
        return float(self.config.mpp)

    def _prepare(self):
        import torch

        device = torch.device(self.device_name)
        if self._prepared_device == device:
            return device
        on_cuda = device.type == "cuda"
        if on_cuda:
            torch.cuda.set_device(device)
            configure_deterministic_cuda()
        model = self.model.to(device).eval()
        if on_cuda:
            model = model.to(memory_format=torch.channels_last)
        mean = torch.tensor(self.config.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.config.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        use_bf16 = network_precision(device, self.autocast) == "bf16"

        def infer(batch_u8):
            """uint8 (B, H, W, 3) on the device -> softmax probabilities (B, C, H, W) float32."""
            from torch.nn import functional as F

            height, width = batch_u8.shape[1], batch_u8.shape[2]
            # Same operations, in the same order, as analysis.postprocess.predict: on CPU the points
            # are bit-identical to ModelDetector.detect.
            x = batch_u8.permute(0, 3, 1, 2).float().div_(255)
            x = (x - mean) / std
            pad_h, pad_w = -height % 8, -width % 8
            if pad_h or pad_w:
                mode = "reflect" if pad_h < height and pad_w < width else "replicate"
                x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
            if on_cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(x)
            return logits[:, :, :height, :width].float().softmax(dim=1)

        self._infer = infer
        if self.compile:
            configure_compile_cache(self.compile_cache)
            kwargs = {"dynamic": False}
            if self.compile_mode and self.compile_mode != "default":
                kwargs["mode"] = self.compile_mode
            self._infer = torch.compile(infer, **kwargs)
        self._prepared_device = device
        self.device_label = describe_device(device)
        return device

    @property
    def precision(self) -> str:
        return network_precision(self.device_name, self.autocast)

    def forward_probs(self, batch_u8):
        """Probabilities of a device-resident uint8 batch (model-only path, used by the benchmark)."""
        import torch

        self._prepare()
        with torch.inference_mode():
            return self._infer(batch_u8)

    # ------------------------------------------------------------------ reader pool

    def _reader_pool(self, path, tiles, tile_mpp) -> ReaderPool:
        scale = 1.0 if tile_mpp is None or abs(float(tile_mpp) / self.working_mpp - 1.0) < 1e-6 \
            else float(tile_mpp) / self.working_mpp
        shape = (max(t.out_h for t in tiles), max(t.out_w for t in tiles))
        if scale != 1.0:
            shape = (int(math.ceil(shape[0] * scale)) + 1, int(math.ceil(shape[1] * scale)) + 1)
        n_slots = self.batch_size * (self.prefetch_batches + 1)
        key = (str(path), shape, scale, self.readers, n_slots)
        if self._pool is None or self._pool_key != key:
            self.close()
            self._pool = ReaderPool(path, self.readers, shape, n_slots, opener=self.opener,
                                    resample_scale=scale, start_method=self.start_method)
            self._pool_key = key
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool, self._pool_key = None, None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ the stream

    def _batches(self, pool: ReaderPool, tiles, timings):
        """Yield (tiles, list of uint8 arrays) of up to batch_size equal-shaped tiles, reading ahead."""
        n_slots = pool.n_slots
        free = deque(range(n_slots))
        pending: deque = deque()
        queue = iter(tiles)
        exhausted = False
        batch_tiles, batch_arrays, batch_slots = [], [], []
        while True:
            while free and not exhausted:
                tile = next(queue, None)
                if tile is None:
                    exhausted = True
                    break
                slot = free.popleft()
                pending.append((tile, slot, pool.submit(tile, slot)))
            if not pending:
                break
            tile, slot, result = pending.popleft()
            t0 = time.perf_counter()
            rgb = pool.take(result, slot)
            timings["read_wait"] += time.perf_counter() - t0
            if batch_arrays and rgb.shape != batch_arrays[0].shape:
                yield batch_tiles, batch_arrays
                free.extend(batch_slots)
                batch_tiles, batch_arrays, batch_slots = [], [], []
            batch_tiles.append(tile)
            batch_arrays.append(rgb)
            batch_slots.append(slot)
            if len(batch_tiles) == self.batch_size:
                yield batch_tiles, batch_arrays  # the consumer copies the arrays before the next step
                free.extend(batch_slots)
                batch_tiles, batch_arrays, batch_slots = [], [], []
        if batch_tiles:
            yield batch_tiles, batch_arrays
            free.extend(batch_slots)

    def detect_tiles(self, path, tiles, level_downsamples=None, tile_mpp=None, tissue_od=None) -> StreamResult:
        """Points (level-0 px) kept by each tile's core and on its tissue (analysis.tissue.on_tissue with
        the slide's `tissue_od`), for `tiles` of the slide at `path`."""
        import torch

        tiles = [t if isinstance(t, tiling.Tile) else tiling.Tile(**t) for t in tiles]
        started = time.perf_counter()
        timings = {k: 0.0 for k in ("read_wait", "host_copy", "postprocess", "forward_launch")}
        if not tiles:
            empty = _empty_result(timings)
            empty.device, empty.precision = self.device_name, self.precision
            return empty
        self._tissue_od = tissue_od
        parts: list[tuple] = []
        n_batches = 0
        try:
            pool = self._reader_pool(path, tiles, tile_mpp)
            device = self._prepare()
            with torch.inference_mode():
                if device.type == "cuda":
                    n_batches = self._run_cuda(device, pool, tiles, level_downsamples, parts, timings)
                else:
                    for batch_tiles, arrays in self._batches(pool, tiles, timings):
                        n_batches += 1
                        t0 = time.perf_counter()
                        host = torch.from_numpy(np.stack(arrays))
                        timings["host_copy"] += time.perf_counter() - t0
                        probs = self._infer(self._padded(host))[: len(arrays)]
                        t0 = time.perf_counter()
                        parts.extend(self._points(probs, batch_tiles, arrays, level_downsamples))
                        timings["postprocess"] += time.perf_counter() - t0
        except BaseException:
            # Reads this call sent are still running and write into the shared slots: a next call on the
            # same slide reusing the pool could take one of them for its own tile. A new pool starts clean.
            self.close()
            raise
        result = _concat(parts, timings)
        result.tiles, result.batches = len(tiles), n_batches
        result.device, result.precision = self.device_label, self.precision
        result.seconds = time.perf_counter() - started
        return result

    def _padded(self, batch):
        """Compiled graphs are specialised to the batch size: pad a short last batch with blank tiles."""
        import torch

        if not self.compile or len(batch) == self.batch_size:
            return batch
        pad = torch.full((self.batch_size - len(batch), *batch.shape[1:]), 255, dtype=batch.dtype,
                         device=batch.device)
        return torch.cat([batch, pad])

    def _run_cuda(self, device, pool, tiles, level_downsamples, parts, timings) -> int:
        """Pinned double buffers; H2D on a copy stream; forward on the current stream; peaks on a third."""
        import torch

        compute = torch.cuda.current_stream(device)
        copy_stream = torch.cuda.Stream(device)
        post_stream = torch.cuda.Stream(device)
        host_bufs: dict = {}
        dev_bufs: dict = {}
        consumed = [None, None]  # event: the forward pass has read device buffer k
        copied = [None, None]  # event: H2D into device buffer k done (also frees host buffer k)
        in_flight = None  # (probs, event, tiles, shapes) of the previous batch
        n = 0

        def postprocess(item):
            probs, ready, batch_tiles, arrays_shape = item
            t0 = time.perf_counter()
            with torch.inference_mode(), torch.cuda.device(device), torch.cuda.stream(post_stream):
                post_stream.wait_event(ready)
                points = self._points(probs, batch_tiles, arrays_shape, level_downsamples)
                # probs goes back to the compute stream's pool when dropped: nothing may still read it.
                post_stream.synchronize()
            timings["postprocess"] += time.perf_counter() - t0
            return points

        executor = None
        if self.post_threads:
            from concurrent.futures import ThreadPoolExecutor

            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdl1-peaks")
        futures: deque = deque()

        def finish(item):
            if executor is None:
                parts.extend(postprocess(item))
                return
            futures.append(executor.submit(postprocess, item))
            while len(futures) > 1:  # at most one batch waiting behind the one being processed
                parts.extend(futures.popleft().result())

        for batch_tiles, arrays in self._batches(pool, tiles, timings):
            k = n % 2
            shape = (self.batch_size if self.compile else len(arrays), *arrays[0].shape)
            if host_bufs.get(k) is None or host_bufs[k].shape[1:] != shape[1:] or host_bufs[k].shape[0] < len(arrays):
                host_bufs[k] = torch.empty((max(shape[0], self.batch_size), *shape[1:]), dtype=torch.uint8).pin_memory()
                dev_bufs[k] = torch.empty_like(host_bufs[k], device=device)
            t0 = time.perf_counter()
            if copied[k] is not None:
                copied[k].synchronize()  # the previous H2D out of host buffer k has finished
            host = host_bufs[k]
            np.stack(arrays, out=host.numpy()[: len(arrays)])
            if self.compile and len(arrays) < self.batch_size:
                host[len(arrays):].fill_(255)
            timings["host_copy"] += time.perf_counter() - t0
            rows = shape[0] if self.compile else len(arrays)
            with torch.cuda.stream(copy_stream):
                if consumed[k] is not None:
                    copy_stream.wait_event(consumed[k])
                dev = dev_bufs[k][:rows]
                dev.copy_(host[:rows], non_blocking=True)
                copied[k] = torch.cuda.Event()
                copied[k].record(copy_stream)
            compute.wait_event(copied[k])
            t0 = time.perf_counter()
            probs = self._infer(dev)[: len(arrays)]
            consumed[k] = torch.cuda.Event()
            consumed[k].record(compute)
            ready = torch.cuda.Event()
            ready.record(compute)
            timings["forward_launch"] += time.perf_counter() - t0
            # The tiles' fine tissue masks, taken now: the reader slots are reused after this step.
            shapes = [(a.shape, tissue.fine_tissue(a, self._tissue_od)) for a in arrays]
            # Peaks of the previous batch run while this batch's forward pass is queued.
            if in_flight is not None:
                finish(in_flight)
            in_flight = (probs, ready, batch_tiles, shapes)
            n += 1
        if in_flight is not None:
            finish(in_flight)
        try:
            while futures:
                parts.extend(futures.popleft().result())
        finally:
            if executor is not None:
                executor.shutdown(wait=True)
        torch.cuda.current_stream(device).synchronize()
        return n

    def _points(self, probs, batch_tiles, arrays, level_downsamples):
        """(xy level-0, labels, scores) kept by each tile, like ModelDetector.detect + detect_batch."""
        from analysis.postprocess import NonFiniteOutputs, extract_points

        try:
            found = extract_points(probs, self.working_mpp, self.nms_radius_um, self.min_score)
        except NonFiniteOutputs as exc:
            raise NonFiniteTiles([batch_tiles[i].index for i in exc.images]) from None
        out = []
        for tile, points, array in zip(batch_tiles, found, arrays):
            shape, cells = array if isinstance(array, tuple) else (array.shape, None)
            height, width = shape[:2]
            # ModelDetector.detect on a tile no larger than its own tile size: one tile whose
            # core is the whole field, then the pixel-centre mapping back to the input (identity
            # here unless readers resampled).
            xy = points.xy.astype(np.float64) + [0, 0]
            sx, sy = tile.out_w / width, tile.out_h / height
            xy = np.stack([(xy[:, 0] + 0.5) * sx - 0.5, (xy[:, 1] + 0.5) * sy - 0.5], axis=1)
            xy = xy.astype(np.float32).reshape(-1, 2)
            xy0 = tiling.to_level0(tile, xy, level_downsamples)
            keep = tiling.in_core(tile, xy0)
            if cells is None:
                cells = tissue.fine_tissue(array, self._tissue_od)
            keep &= tissue.on_tissue_cells(cells, points.xy)
            out.append((xy0[keep], points.labels.astype(np.int8)[keep], points.scores.astype(np.float32)[keep]))
        return out


def _empty_result(timings) -> StreamResult:
    return StreamResult(np.zeros((0, 2), np.float32), np.zeros(0, np.int8), np.zeros(0, np.float32),
                        timings_s=timings)


def _concat(parts, timings) -> StreamResult:
    if not parts:
        return _empty_result(timings)
    return StreamResult(
        xy=np.concatenate([p[0] for p in parts]).astype(np.float32).reshape(-1, 2),
        labels=np.concatenate([p[1] for p in parts]).astype(np.int8),
        scores=np.concatenate([p[2] for p in parts]).astype(np.float32),
        timings_s=timings,
    )


def stream_detector_for(detector, **kwargs) -> TileStreamDetector:
    """A TileStreamDetector per ModelDetector, cached on it (one per worker process); `kwargs`: the
    worker's settings (workers.pipeline.stream_settings)."""
    cached = getattr(detector, "_stream_detector", None)
    if cached is None:
        cached = TileStreamDetector.from_detector(detector, **kwargs)
        detector._stream_detector = cached
    return cached
