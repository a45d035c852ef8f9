"""GPU throughput of the detection engine: read -> detect -> merge -> store, eager and compiled.

    python3 bench/gpu_throughput.py              # on the lent GPU machine; < 5 min, table printed last
    bash bench/gpu_throughput_run.sh             # the same, as the one prepared device call (bench/GPU.md)
    python3 bench/gpu_throughput.py --smoke      # CPU, tiny slide, few tiles, < 2 min (tested here)
    python3 bench/gpu_throughput.py --share-only --tiles-from '../shared/data/ihc_train/bcdata_ki67/*.png'
                                                 # CPU: post-processing share only, real tiles

Self-contained for a machine without Django or the project's venv: it needs numpy, torch,
torchvision, Pillow, scipy (analysis.merge) and tifffile; OpenSlide (openslide-python +
openslide-bin) is used when importable, as the workers do (slideio.slidefile.open_slide), else the
slide is read by SlideTiff below (tifffile parses the file, Pillow decodes the JPEG tiles).
imagecodecs is not needed: the TIFF is written by this script itself.

The slide is SYNTHETIC: a 2048 x 2048 px field rendered by analysis.synthetic.render_field at
0.5 µm/px (~1.5 s), cut into 16 JPEG tiles (Pillow, quality 90, 4:2:0) that repeat over a
40960 x 40960 px level 0 (rendering 40k² with analysis.synthetic_slide.write_pyramidal_tiff takes far
longer than the budget).  Lower levels (2x steps down to <= 1024 px) are downsamples of the same
periodic pattern.  Identical tiles are stored once and referenced by every tile offset that uses
them, so the file is a few MB, but every tile is still read and JPEG-decoded separately.
The whole slide counts as tissue (no tissue mask): Mpx = 40960² / 1e6 = 1677.7 level-0 Mpx.

Measured, in one run:
  model-only ceiling  normalise + network + softmax on device-resident uint8 batches (no reads,
                      no copies, no peaks), eager and torch.compile'd;
  end-to-end          workers.gpu_runtime.TileStreamDetector over every tile (reader pool ->
                      pinned H2D on a side stream -> bf16 channels_last network -> peaks/NMS on
                      the GPU -> level-0 + core filter) + analysis.merge.merge_detections +
                      analysis.detection_store.write_store, eager and compiled.
  post-process share  per batch, interleaved in the same loop: forward (normalise + network +
                      softmax, synchronised) then analysis.postprocess.extract_points on its
                      probabilities, then (a few batches) the greedy reference
                      _reference_extract_points: share = post-process s / forward s, after and
                      before, and whether both gave the same points.  The batch is real tiles
                      (--tiles-from, PNG crops) or tiles read from the SYNTHETIC slide.
Mpx/s are level-0 slide Mpx per second; the ceiling's tiles/s are converted with the same slide
Mpx per tile (cores, not the overlapping read windows), so "e2e / ceiling" compares like with like.
Networks: TRAINED weights - the shipped starter (analysis/starter/fcn-r18-starter-v5.pt, FCN-ResNet18)
and any --checkpoint (e.g. an FCN-ResNet101 trained on the GPU); --random-backbone adds a network with
random weights (the earlier runs' set-up: speed does not depend on training, but the number of peaks
handed to post-processing does).  Each network gets an eager and a compiled row.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

MPP = 0.5
TILE = 512
STARTER = ROOT / "analysis" / "starter" / "fcn-r18-starter-v5.pt"


# --------------------------------------------------------------------------- synthetic slide

def _downsample2(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    a = a[:h, :w].astype(np.uint16)
    return ((a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2] + 2) // 4).astype(np.uint8)


def _jpeg(tile: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(tile).save(buf, "JPEG", quality=quality)  # YCbCr 4:2:0, JFIF
    return buf.getvalue()


def write_periodic_slide(path, size: int, block_px: int = 2048, seed: int = 0) -> dict:
    """SYNTHETIC pyramidal BigTIFF: JPEG tiles of a rendered block repeated over size x size px."""
    from analysis.synthetic import render_field

    t0 = time.perf_counter()
    block_px = min(block_px, size)
    block = render_field(size=(block_px, block_px), mpp=MPP, seed=seed).rgb
    shapes, blocks = [(size, size)], [block]
    while max(shapes[-1]) > 1024:
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
        blocks.append(_downsample2(blocks[-1]) if min(blocks[-1].shape[:2]) >= 2 else blocks[-1])
    data = bytearray()
    levels = []
    for (h, w), blk in zip(shapes, blocks):
        # The periodic extension of blk, cut into TILE x TILE tiles (white past the edge).
        reps = -(-(TILE + blk.shape[0]) // blk.shape[0])
        plane = np.tile(blk, (reps, reps, 1))
        cache: dict = {}
        offsets, counts = [], []
        for ty in range(-(-h // TILE)):
            for tx in range(-(-w // TILE)):
                oy, ox = (ty * TILE) % blk.shape[0], (tx * TILE) % blk.shape[1]
                eh, ew = min(TILE, h - ty * TILE), min(TILE, w - tx * TILE)
                key = (oy, ox, eh, ew)
                if key not in cache:
                    t = plane[oy:oy + TILE, ox:ox + TILE].copy()
                    t[eh:], t[:, ew:] = 255, 255
                    encoded = _jpeg(t)
                    cache[key] = (16 + len(data), len(encoded))
                    data += encoded
                offsets.append(cache[key][0])
                counts.append(cache[key][1])
        levels.append((h, w, offsets, counts))
    _write_bigtiff(path, bytes(data), levels)
    return {"path": str(path), "size": size, "levels": [list(s) for s in shapes], "bytes": os.path.getsize(path),
            "write_s": round(time.perf_counter() - t0, 2), "distinct_level0_tiles": len(levels[0][2]) and
            len({o for o in levels[0][2]})}


def _write_bigtiff(path, data: bytes, levels) -> None:
    """Minimal tiled BigTIFF: data block first, then one IFD per level (level 0 full, others reduced)."""
    SHORT, LONG, RATIONAL, LONG8, ASCII = 3, 4, 5, 16, 2
    sizes = {SHORT: 2, LONG: 4, RATIONAL: 8, LONG8: 8, ASCII: 1}
    out = bytearray(b"II" + struct.pack("<HHHQ", 43, 8, 0, 0))  # offset of the first IFD patched below
    out += data
    previous_next = 8  # where to write the offset of the next IFD
    desc = b"SYNTHETIC H-DAB IHC slide (bench/gpu_throughput.py, analysis.synthetic); not real tissue\0"
    res = 1e4 / MPP  # px per cm
    for k, (h, w, offsets, counts) in enumerate(levels):
        r = res / 2 ** k
        tags = [
            (254, LONG, [0 if k == 0 else 1]), (256, LONG, [w]), (257, LONG, [h]), (258, SHORT, [8, 8, 8]),
            (259, SHORT, [7]), (262, SHORT, [6]), (270, ASCII, desc if k == 0 else None), (277, SHORT, [3]),
            (282, RATIONAL, [(int(r * 1000), 1000)]), (283, RATIONAL, [(int(r * 1000), 1000)]),
            (284, SHORT, [1]), (296, SHORT, [3]), (322, SHORT, [TILE]), (323, SHORT, [TILE]),
            (324, LONG8, offsets), (325, LONG8, counts), (530, SHORT, [2, 2]),
        ]
        tags = [t for t in tags if t[2] is not None]
        if len(out) % 2:
            out += b"\0"
        ifd_at = len(out)
        out[previous_next:previous_next + 8] = struct.pack("<Q", ifd_at)
        entries_end = ifd_at + 8 + 20 * len(tags) + 8
        extra = bytearray()
        entries = bytearray(struct.pack("<Q", len(tags)))
        for code, typ, values in tags:
            if typ == ASCII:
                payload, count = bytes(values), len(values)
            elif typ == RATIONAL:
                payload, count = b"".join(struct.pack("<II", a, b) for a, b in values), len(values)
            else:
                fmt = {SHORT: "H", LONG: "I", LONG8: "Q"}[typ]
                payload, count = struct.pack(f"<{len(values)}{fmt}", *values), len(values)
            assert len(payload) == count * sizes[typ]
            if len(payload) <= 8:
                field = payload.ljust(8, b"\0")
            else:
                field = struct.pack("<Q", entries_end + len(extra))
                extra += payload
                if len(extra) % 2:
                    extra += b"\0"
            entries += struct.pack("<HHQ", code, typ, count) + field
        previous_next = ifd_at + 8 + 20 * len(tags)
        out += entries + struct.pack("<Q", 0) + extra
    Path(path).write_bytes(out)


class SlideTiff:
    """The few OpenSlide calls analysis.tiling uses, for a tiled JPEG TIFF, without OpenSlide/imagecodecs."""

    def __init__(self, path):
        import tifffile

        self.path = str(path)
        with tifffile.TiffFile(self.path) as tif:
            pages = [p for p in tif.pages]
            self._levels = [(p.imagelength, p.imagewidth, p.tilelength, p.tilewidth,
                             list(p.dataoffsets), list(p.databytecounts)) for p in pages]
        self.level_dimensions = [(w, h) for h, w, *_ in self._levels]
        self.dimensions = self.level_dimensions[0]
        self.level_count = len(self._levels)
        self.level_downsamples = [self.dimensions[0] / w for w, _ in self.level_dimensions]
        self._fd = os.open(self.path, os.O_RDONLY)

    def _tile(self, level, ty, tx) -> np.ndarray:
        from PIL import Image

        h, w, th, tw, offsets, counts = self._levels[level]
        i = ty * (-(-w // tw)) + tx
        raw = os.pread(self._fd, counts[i], offsets[i])
        return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))

    def read_region(self, location, level, size):
        from PIL import Image

        x0, y0 = (int(round(v / self.level_downsamples[level])) for v in location)
        rw, rh = size
        h, w, th, tw, _, _ = self._levels[level]
        out = np.zeros((rh, rw, 4), np.uint8)  # transparent outside the image, like OpenSlide
        for ty in range(max(y0, 0) // th, min(y0 + rh, h) // th + 1):
            for tx in range(max(x0, 0) // tw, min(x0 + rw, w) // tw + 1):
                if ty * th >= h or tx * tw >= w:
                    continue
                tile = self._tile(level, ty, tx)
                ys, xs = max(y0, ty * th, 0), max(x0, tx * tw, 0)
                ye, xe = min(y0 + rh, (ty + 1) * th, h), min(x0 + rw, (tx + 1) * tw, w)
                if ye <= ys or xe <= xs:
                    continue
                out[ys - y0:ye - y0, xs - x0:xe - x0, :3] = tile[ys - ty * th:ye - ty * th, xs - tx * tw:xe - tx * tw]
                out[ys - y0:ye - y0, xs - x0:xe - x0, 3] = 255
        return Image.fromarray(out, "RGBA")

    def close(self):
        os.close(self._fd)


def slide_opener():
    """(name, opener): OpenSlide through slideio.slidefile when importable, else SlideTiff."""
    try:
        import openslide  # noqa: F401

        from slideio.slidefile import open_slide

        return "openslide", open_slide
    except Exception:
        return "tifffile+Pillow (SlideTiff)", SlideTiff


# --------------------------------------------------------------------------- measurements

def sync(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def model_ceiling(stream, device, batch: int, iters: int, warmup: int) -> dict:
    import torch

    x = torch.randint(0, 256, (batch, TILE, TILE, 3), dtype=torch.uint8, device=device)
    t0 = time.perf_counter()
    for _ in range(warmup):
        stream.forward_probs(x)
    sync(device)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(iters):
        stream.forward_probs(x)
    sync(device)
    seconds = time.perf_counter() - t0
    return {"tiles_per_s": batch * iters / seconds, "warmup_s": first, "iters": iters}


def share_batch(tiles_from: str | None, slide_path, opener, batch: int) -> tuple[np.ndarray, str]:
    """(batch, TILE, TILE, 3) uint8 for the post-processing share: real PNG crops, else slide tiles."""
    import glob

    from PIL import Image

    paths = sorted(glob.glob(tiles_from))[:batch] if tiles_from else []
    if paths:
        crops = []
        for path in paths:
            rgb = np.asarray(Image.open(path).convert("RGB"))
            canvas = np.full((TILE, TILE, 3), 255, np.uint8)  # smaller fields: padded white
            h, w = min(TILE, rgb.shape[0]), min(TILE, rgb.shape[1])
            canvas[:h, :w] = rgb[:h, :w]
            crops.append(canvas)
        while len(crops) < batch:
            crops.append(crops[len(crops) % len(paths)])
        return np.stack(crops), f"{len(paths)} real PNG fields ({tiles_from}), top-left {TILE} px"
    handle = opener(slide_path)
    width, height = handle.dimensions
    step = max(1, (min(width, height) - TILE) // max(batch, 1))
    tiles = [np.asarray(handle.read_region((k * step, k * step), 0, (TILE, TILE)).convert("RGB")) for k in range(batch)]
    handle.close()
    return np.stack(tiles), "SYNTHETIC slide tiles along the diagonal"


def postprocess_share(stream, batch_u8: np.ndarray, device: str, iters: int, reference_iters: int) -> dict:
    """Forward vs post-processing seconds per batch, interleaved; also the greedy reference (before)."""
    import torch

    from analysis.postprocess import _reference_extract_points, extract_points

    x = torch.from_numpy(batch_u8).to(device)
    args = (stream.working_mpp, stream.nms_radius_um, stream.min_score)
    stream.forward_probs(x)  # warm-up (and compile)
    sync(device)
    forward, post, reference, reference_forward, equal, points = [], [], [], [], True, 0
    for i in range(iters):
        t0 = time.perf_counter()
        probs = stream.forward_probs(x)
        sync(device)
        t1 = time.perf_counter()
        found = extract_points(probs, *args)  # ends with its copy to the host
        sync(device)
        t2 = time.perf_counter()
        forward.append(t1 - t0)
        post.append(t2 - t1)
        points = sum(len(p) for p in found)
        if i < reference_iters:
            expected = _reference_extract_points(probs, *args)
            sync(device)
            reference.append(time.perf_counter() - t2)
            reference_forward.append(t1 - t0)
            equal &= all(np.array_equal(a.xy, b.xy) and np.array_equal(a.labels, b.labels)
                         and np.array_equal(a.scores, b.scores) for a, b in zip(found, expected))
    out = {"batch": len(batch_u8), "iters": iters, "forward_s_per_batch": float(np.median(forward)),
           "postprocess_s_per_batch": float(np.median(post)), "postprocess_share": sum(post) / sum(forward),
           "points_per_batch": points}
    if reference:
        out.update({"reference_iters": len(reference), "reference_postprocess_s_per_batch": float(np.median(reference)),
                    "reference_postprocess_share": sum(reference) / sum(reference_forward),
                    "reference_equal": bool(equal)})
    return out


def end_to_end(stream, slide_path, tiles, downsamples, store_path, width, height) -> dict:
    from analysis import detection_store, merge

    t0 = time.perf_counter()
    found = stream.detect_tiles(slide_path, tiles, level_downsamples=downsamples, tile_mpp=MPP)
    t1 = time.perf_counter()
    merged = merge.merge_detections([(found.xy, found.labels, found.scores)],
                                    dedupe_radius_px=stream.nms_radius_um / MPP)
    t2 = time.perf_counter()
    detection_store.write_store(store_path, merged.xy, merged.labels, merged.scores, width=width, height=height,
                                mpp=MPP)
    t3 = time.perf_counter()
    return {"seconds": t3 - t0, "detect_s": t1 - t0, "merge_s": t2 - t1, "store_s": t3 - t2,
            "detections": int(len(merged.labels)), "duplicates": merged.n_duplicates,
            "timings_s": {k: round(v, 3) for k, v in found.timings_s.items()}, "batches": found.batches}


def load_networks(args) -> list[tuple]:
    """(name, model, config, weights) for each network to measure, trained ones first."""
    import torch

    from analysis.nets import DetectorConfig, build_detector, load_checkpoint

    networks = []
    for path in ([] if args.no_starter else [STARTER]) + [Path(p) for p in args.checkpoint]:
        model, config, _ = load_checkpoint(path)
        networks.append((f"{config.arch}-{config.backbone} {path.stem}", model, config, f"trained ({path.name})"))
    for backbone in args.random_backbone:
        torch.manual_seed(0)
        networks.append((f"fcn-{backbone} random", build_detector("fcn", backbone).eval(),
                         DetectorConfig(arch="fcn", backbone=backbone, mpp=MPP), "RANDOM"))
    return networks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU-sized run: 2048² slide, few tiles, small batch")
    parser.add_argument("--size", type=int, default=None, help="slide side in px (default 40960; smoke 2048)")
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="another trained checkpoint to measure (e.g. an FCN-ResNet101 .pt); repeatable")
    parser.add_argument("--no-starter", action="store_true", help="leave out the shipped starter")
    parser.add_argument("--random-backbone", action="append", default=[],
                        help="also measure fcn-BACKBONE with random weights (earlier runs: resnet101); repeatable")
    parser.add_argument("--batch", type=int, default=None, help="tiles per batch (default 32; smoke 4)")
    parser.add_argument("--readers", type=int, default=None, help="reader processes (default cores - 2, <= 14)")
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode: default (about a minute) | max-autotune-no-cudagraphs (autotunes; "
                             "can take many minutes the first time, then comes from the cache)")
    parser.add_argument("--post-threads", type=int, default=1, help="peaks/NMS helper threads on CUDA (0: inline)")
    parser.add_argument("--reader", choices=("auto", "tifffile"), default="auto",
                        help="auto: OpenSlide when importable; tifffile: SlideTiff (what a machine without it uses)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled rows")
    parser.add_argument("--iters", type=int, default=None, help="timed batches of the model-only ceiling")
    parser.add_argument("--share-only", action="store_true",
                        help="measure only the post-processing share (no slide run, no ceiling); eager only on CPU")
    parser.add_argument("--share-iters", type=int, default=None, help="interleaved forward/post batches (GPU 10, CPU 5)")
    parser.add_argument("--reference-iters", type=int, default=2, help="of those, how many also run the reference")
    parser.add_argument("--tiles-from", default=None, help="glob of PNG fields for the share batch (else slide tiles)")
    parser.add_argument("--budget-s", type=float, default=240.0,
                        help="skip what would start after this many seconds (table still printed)")
    parser.add_argument("--min-score", type=float, default=0.5)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    started = time.perf_counter()

    import torch

    from analysis import tiling
    from workers.gpu_runtime import TileStreamDetector, configure_compile_cache, device_for_worker

    smoke = args.smoke
    size = args.size or (2048 if smoke else 40960)
    batch = args.batch or (4 if smoke else 32)
    readers = args.readers if args.readers is not None else (2 if smoke else max(1, min((os.cpu_count() or 4) - 2, 14)))
    iters = args.iters or (2 if smoke else 20)
    gpu_index = os.environ.get("PDL1_GPU_INDEX")  # as the worker's settings would read them
    device = device_for_worker(int(os.environ.get("PDL1_WORKER_INDEX") or 0),
                               gpu_index=int(gpu_index) if gpu_index else None)
    on_cuda = device.startswith("cuda")
    share_iters = args.share_iters or (10 if on_cuda else (2 if smoke else 5))
    card = torch.cuda.get_device_name(torch.device(device)) if on_cuda else f"CPU ({_cpu_name()}, {os.cpu_count()} cores)"
    compile_rows = not args.no_compile and on_cuda
    cache = configure_compile_cache(os.environ.get("PDL1_COMPILE_CACHE") or "/tmp/pdl1-torch-compile-cache")
    networks = load_networks(args)
    print(f"device {device}: {card}; torch {torch.__version__}; readers {readers}; batch {batch}; "
          f"networks {[n[0] for n in networks]}; compile cache {cache}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="pdl1-gpu-bench-", dir="/tmp"))
    slide = write_periodic_slide(work / f"synthetic-{size}.tiff", min(size, 2048) if args.share_only else size)
    opener_name, opener = slide_opener() if args.reader == "auto" else ("tifffile+Pillow (SlideTiff)", SlideTiff)
    handle = opener(slide["path"])
    width, height = handle.dimensions
    downsamples = list(handle.level_downsamples)
    tiles = tiling.tile_grid(handle.level_dimensions, downsamples, slide_mpp=MPP, working_mpp=MPP, tile_px=TILE,
                             overlap_px=64)
    handle.close()
    if smoke:
        tiles = tiles[: max(3 * batch, 1)]
    slide_mpx = width * height / 1e6
    mpx = slide_mpx * (len(tiles) / len(tiling.tile_grid(  # the part of the slide these tiles own
        [(width, height)], [1.0], MPP, MPP, TILE, 64)))
    mpx_per_tile = mpx / len(tiles)
    share_u8, share_source = share_batch(args.tiles_from, slide["path"], opener, batch)
    print(f"SYNTHETIC slide {width}x{height} px at {MPP} µm/px, {len(slide['levels'])} levels, "
          f"{slide['bytes'] / 1e6:.1f} MB, written in {slide['write_s']} s; reader: {opener_name}; "
          f"{len(tiles)} tiles ({mpx:.1f} Mpx); share batch: {share_source}", flush=True)

    results: dict = {"card": card, "device": device, "torch": torch.__version__, "slide": slide, "tiles": len(tiles),
                     "mpx": mpx, "readers": readers, "batch": batch, "reader": opener_name,
                     "share_batch": share_source, "share_only": args.share_only,
                     "networks": [{"name": n[0], "weights": n[3]} for n in networks], "rows": []}

    def elapsed():
        return time.perf_counter() - started

    for name, model, config, weights in networks:
        for compiled in ([False, True] if compile_rows else [False]):
            label = f"compiled ({args.compile_mode})" if compiled else "eager"
            row: dict = {"mode": label, "network": name, "weights": weights}
            if elapsed() > args.budget_s:
                row["skipped"] = f"time budget ({elapsed():.0f} s used)"
                results["rows"].append(row)
                continue
            stream = TileStreamDetector(model, config, device=device, batch_size=batch, readers=readers,
                                        compile=compiled, compile_mode=args.compile_mode, compile_cache=cache,
                                        min_score=args.min_score, opener=opener, post_threads=args.post_threads)
            try:
                share = postprocess_share(stream, share_u8, device, share_iters, args.reference_iters)
                row.update(share)
                print(f"[{elapsed():5.0f} s] {name} {label}: post-process {share['postprocess_s_per_batch'] * 1e3:.1f} ms "
                      f"/ forward {share['forward_s_per_batch'] * 1e3:.1f} ms per batch of {len(share_u8)} = "
                      f"{share['postprocess_share']:.1%} (reference {share.get('reference_postprocess_share', 0):.1%}, "
                      f"same points: {share.get('reference_equal')}; {share['points_per_batch']} points)", flush=True)
                if not args.share_only:
                    ceiling = model_ceiling(stream, device, batch, iters, warmup=2 if on_cuda else 1)
                    row["ceiling_tiles_per_s"] = ceiling["tiles_per_s"]
                    row["ceiling_mpx_s"] = ceiling["tiles_per_s"] * mpx_per_tile
                    row["warmup_s"] = ceiling["warmup_s"]
                    print(f"[{elapsed():5.0f} s] {name} {label}: model-only {row['ceiling_mpx_s']:.1f} Mpx/s "
                          f"({ceiling['tiles_per_s']:.1f} tiles/s)", flush=True)
                    # Warm the reader pool and the peak finder on a few tiles, then the timed full run.
                    stream.detect_tiles(slide["path"], tiles[: 2 * batch], level_downsamples=downsamples, tile_mpp=MPP)
                    e2e = end_to_end(stream, slide["path"], tiles, downsamples,
                                     work / f"detections-{len(results['rows'])}.store", width, height)
                    row.update(e2e)
                    row["e2e_mpx_s"] = mpx / e2e["seconds"]
                    row["share_of_ceiling"] = row["e2e_mpx_s"] / row["ceiling_mpx_s"]
                    print(f"[{elapsed():5.0f} s] {name} {label}: end-to-end {row['e2e_mpx_s']:.1f} Mpx/s in "
                          f"{e2e['seconds']:.1f} s (detect {e2e['detect_s']:.1f}, merge {e2e['merge_s']:.2f}, store "
                          f"{e2e['store_s']:.2f}; {e2e['detections']} detections; {e2e['timings_s']})", flush=True)
            except Exception as exc:  # report and go on: the table must still come out
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                print(f"[{elapsed():5.0f} s] {name} {label}: FAILED {row['error']}", flush=True)
            finally:
                stream.close()
            results["rows"].append(row)
            if args.json:  # after every row, so a run cut short still leaves its numbers
                results["total_s"] = elapsed()
                Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    results["total_s"] = elapsed()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    print(table(results), flush=True)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table(results: dict) -> str:
    rows = results["rows"]
    best = max((r.get("ceiling_mpx_s", 0) for r in rows), default=0) or 1
    lines = [
        "",
        f"### GPU throughput: {results['card']} (torch {results['torch']}), batch {results['batch']}, "
        f"{results['readers']} readers ({results['reader']}), SYNTHETIC {results['slide']['size']}² slide at {MPP} µm/px, "
        f"{results['tiles']} tiles = {results['mpx']:.1f} Mpx; share batch: {results['share_batch']}; "
        f"total {results['total_s']:.0f} s",
        "",
        "| network | mode | post-process / forward (ms per batch) | share | reference share | same points | "
        "model-only Mpx/s | end-to-end Mpx/s | e2e / own ceiling | e2e / best ceiling | e2e s | read wait s | "
        "postprocess s | detections |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r or "error" in r:
            lines.append(f"| {r['network']} | {r['mode']} | {r.get('skipped') or r.get('error')} |" + " |" * 11)
            continue
        share = (f"{r['postprocess_s_per_batch'] * 1e3:.1f} / {r['forward_s_per_batch'] * 1e3:.1f} | "
                 f"{r['postprocess_share']:.1%} | {r.get('reference_postprocess_share', float('nan')):.1%} | "
                 f"{r.get('reference_equal', '-')}")
        if "e2e_mpx_s" not in r:
            lines.append(f"| {r['network']} | {r['mode']} | {share} |" + " - |" * 8)
            continue
        t = r["timings_s"]
        lines.append(
            f"| {r['network']} | {r['mode']} | {share} | {r['ceiling_mpx_s']:.1f} | {r['e2e_mpx_s']:.1f} | "
            f"{r['share_of_ceiling']:.0%} | {r['e2e_mpx_s'] / best:.0%} | {r['seconds']:.1f} | "
            f"{t.get('read_wait', 0):.1f} | {t.get('postprocess', 0):.1f} | {r['detections']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
