"""Is this slide a brightfield haematoxylin-DAB IHC with tissue on it?  Checked before scoring.

Pure: it looks at the low-resolution image that `analysis.tissue.tissue_mask` already read (its
`rgb`, `valid` and `mask`), so the check costs no extra slide read.  Each finding is kept, with its
measured value, so the slide page can say exactly why a slide failed:

- **brightfield**: most image pixels are bright (glass is white).  A fluorescence scan is mostly
  dark background (a DAPI NDPI: every valid pixel darker than mid-grey).
- **tissue**: the tissue mask found something.
- **haematoxylin**: part of the tissue carries haematoxylin (colour deconvolution, Ruifrok-Johnston).
- **stain colours**: the tissue's colours are what haematoxylin and DAB mix to, not eosin (an H&E
  slide) nor arbitrary colours (an RGB test pattern): small residual after H-DAB deconvolution
  and little eosin in an H-E-DAB deconvolution.
- **DAB**: some DAB at all.  A PD-L1-negative slide can lack it; that is a pathologist's call, which
  the override (with a reason) records.

Thresholds are on the 10 µm/px mask image, where a cell's signal is averaged with its
surroundings, hence low values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .stains import StainVectors, concentrations

# Brightfield: valid pixels darker than this mean RGB count as dark; a brightfield slide is mostly
# glass and stained tissue (mean RGB well above 100), a fluorescence scan mostly black.
DARK_LUMINANCE = 100
MAX_DARK_FRACTION = 0.5
# Haematoxylin: at least this share of tissue pixels above this concentration (OD units).
MIN_HAEMATOXYLIN_OD = 0.05
MIN_HAEMATOXYLIN_FRACTION = 0.10
# DAB: at least this share of tissue pixels above this concentration (H-E-DAB basis, so eosin
# does not count as DAB).
MIN_DAB_OD = 0.10
MIN_DAB_FRACTION = 0.001
# Stain colours: median |residual| of the H-DAB deconvolution over tissue (H-DAB IHC: <= 0.07;
# an RGB test pattern: 0.25), and the share of tissue with eosin (IHC: ~0; H&E: ~0.5).
MAX_RESIDUAL_OD = 0.15
MIN_EOSIN_OD = 0.10
MAX_EOSIN_FRACTION = 0.25
# Ruifrok & Johnston's eosin vector: the third stain of the H-E-DAB basis.
_EOSIN = (0.072, 0.990, 0.105)
HED_VECTORS = StainVectors(residual=_EOSIN)


@dataclass
class Finding:
    name: str  # brightfield | tissue | haematoxylin | stain_colours | dab
    passed: bool
    value: float | None  # the measured quantity the threshold applies to
    message: str  # for the pathologist; says what was found


@dataclass
class SlideQC:
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.passed]

    def as_dict(self) -> dict:
        """What the slide stores (Slide.qc): JSON-ready."""
        return {"passed": self.passed, "findings": [asdict(f) for f in self.findings]}


def check_image(rgb: np.ndarray, valid: np.ndarray, tissue: np.ndarray) -> SlideQC:
    """QC of a low-resolution slide image: uint8 RGB (h, w, 3), data mask and tissue mask (h, w)."""
    rgb = np.asarray(rgb)[..., :3]
    valid = np.asarray(valid, bool)
    tissue = np.asarray(tissue, bool) & valid
    qc = SlideQC()
    luminance = rgb.mean(axis=2)
    dark = float((luminance[valid] < DARK_LUMINANCE).mean()) if valid.any() else 1.0
    brightfield = dark <= MAX_DARK_FRACTION
    qc.findings.append(Finding(
        "brightfield", brightfield, round(dark, 4),
        "brightfield (bright background)" if brightfield else
        f"not brightfield: {dark:.0%} of the image is dark (a fluorescence scan?)"))
    if not tissue.any():
        qc.findings.append(Finding("tissue", False, 0.0, "no tissue found"))
        return qc
    qc.findings.append(Finding("tissue", True, round(float(tissue.mean()), 4),
                               f"tissue on {tissue.mean():.0%} of the slide"))
    pixels = rgb[tissue]
    hdab = concentrations(pixels)
    hed = concentrations(pixels, HED_VECTORS)
    h_share = float((hdab[:, 0] > MIN_HAEMATOXYLIN_OD).mean())
    has_h = brightfield and h_share >= MIN_HAEMATOXYLIN_FRACTION
    qc.findings.append(Finding(
        "haematoxylin", has_h, round(h_share, 4),
        f"haematoxylin on {h_share:.0%} of the tissue" if has_h else
        f"no haematoxylin counterstain found ({h_share:.0%} of the tissue)"))
    residual = float(np.median(np.abs(hdab[:, 2])))
    eosin = float((hed[:, 2] > MIN_EOSIN_OD).mean())
    colours = brightfield and residual <= MAX_RESIDUAL_OD and eosin <= MAX_EOSIN_FRACTION
    if colours:
        message = "colours are haematoxylin and DAB"
    elif eosin > MAX_EOSIN_FRACTION:
        message = f"eosin on {eosin:.0%} of the tissue: an H&E slide, not DAB IHC"
    else:
        message = f"colours not explained by haematoxylin and DAB (residual OD {residual:.2f})"
    qc.findings.append(Finding("stain_colours", colours, round(residual, 4), message))
    dab_share = float((hed[:, 1] > MIN_DAB_OD).mean())
    # Eosin leaks into the DAB channel: on an H&E slide no DAB can be told apart.
    has_dab = brightfield and dab_share >= MIN_DAB_FRACTION and eosin <= MAX_EOSIN_FRACTION
    if has_dab:
        message = f"DAB on {dab_share:.1%} of the tissue"
    elif brightfield and eosin > MAX_EOSIN_FRACTION:
        message = "no DAB distinguishable from the eosin"
    else:
        message = "no DAB found (a PD-L1-negative slide is possible: a pathologist may override)"
    qc.findings.append(Finding("dab", has_dab, round(dab_share, 5), message))
    return qc


def check_mask(mask) -> SlideQC:
    """QC from an `analysis.tissue.TissueMask` that kept its image (`keep_image=True`)."""
    if mask.rgb is None:
        raise ValueError("the tissue mask was computed without keep_image=True")
    return check_image(mask.rgb, mask.valid, mask.mask)

