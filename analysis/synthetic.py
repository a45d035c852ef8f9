"""SYNTHETIC H-DAB IHC images with exact ground truth.

For unit tests and detector pre-training ONLY: nothing produced here is real
tissue, and every returned object says so (``synthetic=True`` and a
``provenance`` string starting with "SYNTHETIC").

Model (all sizes physical, in micrometres, converted with ``mpp``):

* tumour nuclei: irregular ellipses 6-10 um across with textured
  haematoxylin; some in touching clusters (slight overlap), never closer than
  ~0.6 diameter so every centre stays visible and the ground truth is exact;
* PD-L1-like positives: a membranous DAB ring (1-2 um wide) at the cell
  border, 2-4 um outside the nucleus; negatives carry no ring;
* faint fibrous haematoxylin/DAB stroma, slight optical blur, sensor noise;
* everything is mixed with Beer-Lambert via :func:`analysis.stains.compose`.

Textures are functions of *global* coordinates (random lattices seeded once
and sampled bilinearly), and cells are generated for the whole image before
any pixel is drawn, so any window - a field or one tile of a slide - renders
identically no matter how the image is cut up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import stains
from .labels import NEGATIVE, POSITIVE

PROVENANCE = "SYNTHETIC H-DAB IHC (analysis.synthetic); not real tissue"


@dataclass
class SyntheticField:
    rgb: np.ndarray            # (H, W, 3) uint8
    points: np.ndarray         # (N, 2) float64, (x, y) px, exact nucleus centres
    labels: np.ndarray         # (N,) int, 1 = positive tumour, 2 = negative tumour
    nucleus_mask: np.ndarray   # (H, W) int32, 0 = none, i + 1 = nucleus i
    mpp: float
    seed: int | None = None
    synthetic: bool = True
    provenance: str = PROVENANCE


# ----------------------------------------------------------------------------
# Global textures
# ----------------------------------------------------------------------------

class _Texture:
    """Smooth random noise defined at any global (x, y) coordinate.

    A small periodic random lattice (smoothed, optionally anisotropic and
    rotated) sampled bilinearly: cheap, seamless across tiles, and without the
    visibly regular look of a sum of a few sinusoids.  Values ~ N(0, 1).
    """

    def __init__(self, rng, cell_px, sigma=(1.0, 1.0), size=128):
        f = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma, mode="wrap")
        self.f = ((f - f.mean()) / (f.std() + 1e-9)).astype(np.float32)
        self.cell = float(cell_px)
        ang = rng.uniform(0, np.pi)
        self.c, self.s = math.cos(ang), math.sin(ang)

    def __call__(self, x, y):
        x = np.asarray(x, np.float32)
        y = np.asarray(y, np.float32)
        u = (x * self.c + y * self.s) / self.cell
        v = (-x * self.s + y * self.c) / self.cell
        out = ndimage.map_coordinates(self.f, np.stack([v.ravel(), u.ravel()]), order=1,
                                      mode="grid-wrap")
        return out.reshape(x.shape)


@dataclass
class _Style:
    nuc_tex: _Texture
    mem_tex: _Texture
    fibre_tex: _Texture
    patch_tex: _Texture
    stroma_h: float
    stroma_dab: float


def _make_style(rng, mpp, stroma):
    px = 1.0 / mpp  # pixels per micrometre
    return _Style(
        nuc_tex=_Texture(rng, 0.6 * px),                  # chromatin granules
        mem_tex=_Texture(rng, 0.8 * px),                  # granular membrane stain
        fibre_tex=_Texture(rng, 0.5 * px, (1.0, 12.0)),   # elongated: collagen fibres
        patch_tex=_Texture(rng, 8.0 * px, (2.0, 2.0)),    # slow staining drift
        stroma_h=rng.uniform(0.06, 0.12) if stroma else 0.0,
        stroma_dab=rng.uniform(0.02, 0.04) if stroma else 0.0,
    )


# ----------------------------------------------------------------------------
# Cell placement (whole image, before any rendering)
# ----------------------------------------------------------------------------

@dataclass
class _Cells:
    xy: np.ndarray      # (N, 2)
    a: np.ndarray       # semi-major axis, px
    b: np.ndarray       # semi-minor axis, px
    theta: np.ndarray   # orientation
    harm: np.ndarray    # (N, 3, 2) amplitude/phase of shape harmonics k = 2..4
    mem_off: np.ndarray  # membrane distance outside the nucleus, px
    mem_w: np.ndarray   # membrane ring width, px
    h: np.ndarray       # nuclear haematoxylin OD
    dab: np.ndarray     # membrane DAB OD (0 for negatives)
    labels: np.ndarray

    @property
    def reach(self):
        """Radius beyond which a cell paints nothing (bounding circle).

        Offsets are applied in the nucleus' normalised radius, so they stretch
        with the long axis and the shape harmonics (<= 1.21): scale them too,
        or rings would be clipped at tile borders.
        """
        rmean = 0.5 * (self.a + self.b)
        # Negatives paint no ring, only cytoplasm out to the membrane line.
        extra = self.mem_off + np.where(self.dab > 0, self.mem_w, 0.0) + 1.0
        return 1.25 * self.a * (1.0 + extra / rmean) + 1.0

    def subset(self, idx):
        return _Cells(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def _ellipse_radius(a, b, theta, phi):
    """Radius of an ellipse in direction phi (used to make clusters touch)."""
    t = phi - theta
    return a * b / np.sqrt((b * np.cos(t)) ** 2 + (a * np.sin(t)) ** 2)


def _place_cells(rng, height, width, mpp, n, positive_fraction, cluster_fraction,
                 allowed=None) -> _Cells:
    px = 1.0 / mpp
    # Shapes are drawn up front; placement decides how many are kept.
    pool = int(n)
    diam = rng.uniform(6.0, 10.0, pool) * px
    aspect = rng.uniform(1.0, 1.5, pool)
    a = diam / 2 * np.sqrt(aspect)
    b = diam / 2 / np.sqrt(aspect)
    theta = rng.uniform(0, np.pi, pool)
    a_max = a.max() if pool else 1.0
    gap = 1.0 * px  # free space between non-clustered nuclei

    # Uniform grid hash -> only the 3x3 neighbouring buckets need checking.
    bucket = 2 * a_max + gap
    grid: dict = {}
    xs, ys = [], []

    def ok(x, y, i, parent=-1, check_allowed=True):
        if not (0 <= x < width and 0 <= y < height):
            return False
        if check_allowed and allowed is not None and not allowed(x, y):
            return False
        gx, gy = int(x // bucket), int(y // bucket)
        for ox in (-1, 0, 1):
            for oy in (-1, 0, 1):
                for j in grid.get((gx + ox, gy + oy), ()):
                    d = math.hypot(xs[j] - x, ys[j] - y)
                    if j == parent:
                        # Touching neighbour, but never closer than 0.6 of the
                        # larger diameter so its centre stays visible.
                        if d < 0.6 * 2 * max(a[i], a[j]):
                            return False
                    elif parent >= 0:
                        if d < 0.85 * (a[i] + a[j]):
                            return False
                    elif d < a[i] + a[j] + gap:
                        return False
        return True

    def add(x, y):
        grid.setdefault((int(x // bucket), int(y // bucket)), []).append(len(xs))
        xs.append(x)
        ys.append(y)

    def candidates():
        """Uniform random positions, pre-filtered by ``allowed`` in batches
        (a per-point call would dominate the run time on large slides)."""
        for _ in range(max(64, 64 * n // 4096)):  # bounded: allowed may be ~empty
            c = rng.uniform(0, 1, (4096, 2)) * (width, height)
            if allowed is not None:
                c = c[allowed(c[:, 0], c[:, 1])]
            yield from c

    cand = candidates()
    n_cluster = int(round(n * cluster_fraction))
    tries = 0
    # Clusters of 2-4 touching nuclei first (free space is plentiful early).
    while len(xs) < n_cluster and tries < 50 * n + 100:
        tries += 1
        i = len(xs)
        x, y = next(cand, (-1.0, -1.0))  # (-1, -1) is rejected by ok()
        if not ok(x, y, i, check_allowed=False):
            continue
        add(x, y)
        members = [i]
        for _ in range(int(rng.integers(1, 4))):
            i = len(xs)
            if i >= n_cluster:
                break
            for _attempt in range(12):
                p = members[int(rng.integers(len(members)))]
                phi = rng.uniform(0, 2 * np.pi)
                # Centre distance = sum of the two radii along the joining
                # line, shrunk 8% so the outlines overlap a little (touch).
                d = 0.92 * (_ellipse_radius(a[i], b[i], theta[i], phi + np.pi)
                            + _ellipse_radius(a[p], b[p], theta[p], phi))
                x, y = xs[p] + d * math.cos(phi), ys[p] + d * math.sin(phi)
                if ok(x, y, i, parent=p):
                    add(x, y)
                    members.append(i)
                    break
    # Then isolated nuclei by dart throwing.
    while len(xs) < n and tries < 80 * n + 200:
        tries += 1
        x, y = next(cand, (-1.0, -1.0))
        if ok(x, y, len(xs), check_allowed=False):
            add(x, y)

    k = len(xs)
    labels = np.full(k, NEGATIVE, np.int64)
    labels[rng.permutation(k)[: int(round(k * positive_fraction))]] = POSITIVE
    harm = np.stack([rng.uniform(0, 0.07, (k, 3)), rng.uniform(0, 2 * np.pi, (k, 3))], -1)
    dab = rng.uniform(0.3, 0.8, k)
    return _Cells(
        xy=np.stack([np.asarray(xs, float), np.asarray(ys, float)], 1).reshape(-1, 2),
        a=a[:k], b=b[:k], theta=theta[:k], harm=harm,
        mem_off=rng.uniform(2.0, 4.0, k) * px,
        mem_w=rng.uniform(1.0, 2.0, k) * px,
        h=rng.uniform(0.35, 0.8, k),
        dab=np.where(labels == POSITIVE, dab, 0.0),  # negatives: no membrane
        labels=labels,
    )


# ----------------------------------------------------------------------------
# Rendering of one window
# ----------------------------------------------------------------------------

def render_window(cells: _Cells, style: _Style, x0, y0, height, width, mpp, rng,
                  noise=3.0, blur_um=0.3, tissue=None, want_mask=False):
    """Render window [x0, x0+width) x [y0, y0+height) of the global image.

    ``tissue`` optionally maps global (x, y) grids to tissue coverage in
    [0, 1] (glass elsewhere).  Returns (rgb, nucleus_mask or None).
    """
    sigma = blur_um / mpp
    # Margin >= the gaussian kernel radius (scipy truncates at 4 sigma), so a
    # tile's blur sees exactly the pixels the whole image would: no seams.
    m = int(4 * sigma + 0.5) + 1
    H, W = height + 2 * m, width + 2 * m
    gy, gx = np.meshgrid(np.arange(y0 - m, y0 - m + H, dtype=np.float32),
                         np.arange(x0 - m, x0 - m + W, dtype=np.float32), indexing="ij")

    # Tissue coverage; a coarse probe first lets all-glass / all-tissue tiles
    # of a slide skip the per-pixel evaluation.
    if tissue is None:
        cover = 1.0
    else:
        probe = tissue(gx[::8, ::8], gy[::8, ::8])
        if probe.max() == 0 and len(cells.labels) == 0:
            cover = 0.0
        elif probe.min() == 1:
            cover = 1.0
        else:
            cover = tissue(gx, gy).astype(np.float32)
    # Stroma: fibrous texture modulated by slow patches.
    if np.any(cover):
        fibre = 0.5 + 0.5 * np.tanh(style.fibre_tex(gx, gy))
        patch = np.clip(0.8 + 0.15 * style.patch_tex(gx, gy), 0.4, 1.2)
        h_map = cover * style.stroma_h * fibre * patch
        d_map = cover * style.stroma_dab * (0.5 + fibre) * patch
    else:
        h_map = np.zeros((H, W), np.float32)
        d_map = np.zeros((H, W), np.float32)
    nuc_map = np.zeros((H, W), np.float32)
    lab = np.zeros((H, W), np.int32) if want_mask else None
    best = np.full((H, W), np.inf, np.float32) if want_mask else None

    reach = cells.reach
    sel = np.nonzero((cells.xy[:, 0] + reach >= x0 - m) & (cells.xy[:, 0] - reach < x0 - m + W)
                     & (cells.xy[:, 1] + reach >= y0 - m) & (cells.xy[:, 1] - reach < y0 - m + H))[0]
    for i in sel:
        cx, cy = cells.xy[i]
        r = reach[i]
        xa, xb = max(int(cx - r) - (x0 - m), 0), min(int(cx + r) + 2 - (x0 - m), W)
        ya, yb = max(int(cy - r) - (y0 - m), 0), min(int(cy + r) + 2 - (y0 - m), H)
        if xa >= xb or ya >= yb:
            continue
        px, py = gx[ya:yb, xa:xb], gy[ya:yb, xa:xb]
        dx, dy = px - cx, py - cy
        c, s = math.cos(cells.theta[i]), math.sin(cells.theta[i])
        u, v = dx * c + dy * s, -dx * s + dy * c
        a, b = cells.a[i], cells.b[i]
        phi = np.arctan2(v / b, u / a)
        shape = 1.0
        for k, (amp, ph) in zip((2, 3, 4), cells.harm[i]):
            shape = shape + amp * np.cos(k * phi + ph)
        rho = np.sqrt((u / a) ** 2 + (v / b) ** 2) / shape
        rmean = 0.5 * (a + b)
        # Anti-aliased coverage: signed distance to the outline ~ (1-rho)*r.
        nuc = np.clip((1.0 - rho) * rmean + 0.5, 0.0, 1.0)
        # Textures are only sampled where they show (saves most of the time).
        on = nuc > 0
        # max, not sum: touching nuclei abut in a section rather than stack,
        # so their contact zone must not turn darker than either nucleus.
        val = nuc[on] * cells.h[i] * np.clip(1.0 + 0.2 * style.nuc_tex(px[on], py[on]), 0.5, 1.5)
        nuc_map[ya:yb, xa:xb][on] = np.maximum(nuc_map[ya:yb, xa:xb][on], val)
        # Faint cytoplasm out to the membrane.
        off = cells.mem_off[i]
        dist_out = (rho - 1.0) * rmean  # ~ px outside the nuclear outline
        cyto = np.clip(off - dist_out + 0.5, 0.0, 1.0) * (1 - nuc)
        h_map[ya:yb, xa:xb] += 0.05 * cyto
        if cells.dab[i] > 0:
            half = cells.mem_w[i] / 2
            ring = np.clip(half - np.abs(dist_out - off) + 0.5, 0.0, 1.0)
            d_map[ya:yb, xa:xb] += 0.04 * cyto
            on = ring > 0
            d_map[ya:yb, xa:xb][on] += ring[on] * cells.dab[i] * np.clip(
                0.8 + 0.25 * style.mem_tex(px[on], py[on]), 0.3, 1.3)
        if want_mask:
            inside = (rho < 1.0) & (rho < best[ya:yb, xa:xb])
            lab[ya:yb, xa:xb][inside] = i + 1
            best[ya:yb, xa:xb][inside] = rho[inside]

    # Glass is not perfectly clear; a touch of residual-free tint.
    h_map += nuc_map + 0.01
    d_map += 0.01
    rgb = stains.compose(h_map, d_map)  # Beer-Lambert
    del h_map, d_map, gx, gy
    # Optics and sensor act on light, so blur and noise come after mixing.
    inten = rgb.astype(np.float32)
    if sigma > 0:
        ndimage.gaussian_filter(inten, (sigma, sigma, 0), output=inten)
    inten = inten[m:m + height, m:m + width]
    if noise > 0:
        inten = inten + rng.normal(0, noise, inten.shape).astype(np.float32)
    rgb = np.clip(np.rint(inten), 0, 255).astype(np.uint8)
    return rgb, (lab[m:m + height, m:m + width] if want_mask else None)


def _count(n_nuclei, density, area_px, mpp):
    if n_nuclei is not None:
        return int(n_nuclei)
    return int(round(density * area_px * (mpp * 1e-3) ** 2))


def render_field(size=(512, 512), mpp=0.5, seed=0, n_nuclei=None, density=2000.0,
                 positive_fraction=0.4, cluster_fraction=0.3, stroma=True,
                 noise=3.0, blur_um=0.3) -> SyntheticField:
    """Render one SYNTHETIC field.

    ``density`` is nuclei per mm^2 (used when ``n_nuclei`` is None).  If the
    requested number cannot be packed, fewer are placed; ``points`` is always
    the truth for what was drawn.
    """
    h, w = size
    rng = np.random.default_rng(seed)
    style = _make_style(rng, mpp, stroma)
    n = _count(n_nuclei, density, h * w, mpp)
    cells = _place_cells(rng, h, w, mpp, n, positive_fraction, cluster_fraction)
    rgb, mask = render_window(cells, style, 0, 0, h, w, mpp, rng, noise, blur_um,
                               want_mask=True)
    return SyntheticField(rgb=rgb, points=cells.xy.copy(), labels=cells.labels.copy(),
                          nucleus_mask=mask, mpp=mpp, seed=seed)


# ----------------------------------------------------------------------------
# Whole-slide model (tissue and cells; analysis.synthetic_slide writes the pyramidal TIFF)
# ----------------------------------------------------------------------------

def _tissue_model(rng, height, width, tissue_fraction):
    """Blob-shaped tissue region: a smoothed random field, thresholded.

    Kept at <= 256 px on the long side and sampled bilinearly, so it costs
    nothing however large the slide is.
    """
    scale = max(height, width) / 256.0
    lh, lw = max(int(math.ceil(height / scale)), 4), max(int(math.ceil(width / scale)), 4)
    f = ndimage.gaussian_filter(rng.normal(size=(lh, lw)), sigma=max(lh, lw) / 10, mode="wrap")
    # Fade the border so tissue stays away from the slide edges like a real
    # section on glass.
    yy, xx = np.mgrid[0:lh, 0:lw]
    edge = np.minimum.reduce([yy, xx, lh - 1 - yy, lw - 1 - xx]) / (0.08 * max(lh, lw))
    f = (f - f.mean()) / (f.std() + 1e-9) - 3.0 * np.exp(-edge)
    thr = np.quantile(f, 1.0 - tissue_fraction) if tissue_fraction < 1 else -np.inf
    width_soft = 0.05 * (f.std() + 1e-9)

    def cover(x, y):
        # Global px -> low-res coords; order-1 interpolation is continuous, so
        # tiles meet seamlessly.
        coords = np.stack([np.asarray(y, float) / scale, np.asarray(x, float) / scale])
        v = ndimage.map_coordinates(f, coords.reshape(2, -1), order=1, mode="nearest")
        return np.clip((v - thr) / width_soft + 0.5, 0, 1).reshape(np.shape(x))

    return cover


def slide_model(size, mpp, seed, tissue_fraction, density, positive_fraction,
                cluster_fraction):
    """Everything about a slide except its pixels: (style, tissue, cells)."""
    height, width = size
    rng = np.random.default_rng(seed)
    style = _make_style(rng, mpp, True)
    cover = _tissue_model(rng, height, width, tissue_fraction)
    n = _count(None, density, height * width * tissue_fraction, mpp)
    cells = _place_cells(rng, height, width, mpp, n, positive_fraction, cluster_fraction,
                         allowed=lambda x, y: cover(x, y) > 0.9)
    return style, cover, cells
