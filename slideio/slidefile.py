"""Open and validate whole-slide files.

OpenSlide (openslide-python + openslide-bin) reads the vendor formats; plain PNG/JPEG/TIFF fields
open as single-level slides through openslide's ImageSlide; OME-TIFF that OpenSlide refuses is
read with tifffile. openslide is imported lazily: importing this module stays cheap.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from slideio.pyramid import pyramid_problem

# Outside this range an "mpp" is not a microscope resolution (e.g. a TIFF's 72 dpi default).
PLAUSIBLE_MPP = (0.05, 20.0)
THUMBNAIL_SIZE = (512, 512)
# Vendor slide formats: never fall back to reading such a file as a plain image.
VENDOR_SUFFIXES = {".svs", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".bif", ".dcm", ".svslide", ".czi", ".isyntax"}


class SlideError(Exception):
    """A file that cannot be used as a slide; the message is shown to the user."""


@dataclass
class SlideInfo:
    format: str
    vendor: str
    width: int
    height: int
    level_count: int
    level_dimensions: list[list[int]]
    level_downsamples: list[float]
    mpp_x: float | None
    mpp_y: float | None
    objective_power: float | None
    properties: dict[str, str] = field(default_factory=dict)
    associated_images: list[str] = field(default_factory=list)


def open_slide(path: str | os.PathLike):
    """An OpenSlide-like handle for any supported file; raises SlideError."""
    import openslide
    from PIL import Image, UnidentifiedImageError

    path = str(path)
    try:
        fmt = openslide.OpenSlide.detect_format(path)
    except openslide.OpenSlideError as exc:
        raise SlideError(f"OpenSlide could not read the file: {exc}") from None
    # OpenSlide's generic-tiff driver opens an OME-TIFF as one flat level without its
    # resolution; tifffile reads its SubIFD pyramid and physical pixel size.
    if fmt in (None, "generic-tiff") and is_ome_tiff(path):
        from slideio.ometiff import OmeTiffSlide

        try:
            return OmeTiffSlide(path)
        except Exception as exc:
            raise SlideError(f"OME-TIFF could not be read: {_clean(exc, path)}") from None
    if fmt is not None:
        try:
            return openslide.OpenSlide(path)
        except openslide.OpenSlideUnsupportedFormatError:
            raise SlideError("unsupported slide format") from None
        except openslide.OpenSlideError as exc:
            raise SlideError(f"{fmt} slide could not be opened: {_clean(exc, path)}") from None
    if Path(path).suffix.lower() in VENDOR_SUFFIXES:
        raise SlideError(f"not a readable {Path(path).suffix} slide: OpenSlide does not recognise it (damaged or unsupported)")
    _check_first_page_is_largest(path)
    try:
        return openslide.ImageSlide(path)
    except UnidentifiedImageError:
        raise SlideError("not a slide or image file that this platform can read") from None
    except Image.DecompressionBombError:
        raise SlideError("image too large for a single-level field; convert it to a tiled pyramidal TIFF") from None
    except OSError as exc:
        raise SlideError(f"image could not be opened: {_clean(exc, path)}") from None


# Defaults of the SLIDE_MAX_PIXELS and SLIDE_MAX_DECODE_PIXELS settings (cases.services passes them).
MAX_PIXELS = 40_000_000_000  # level 0: 200 000 x 200 000, past the largest glass slide at 0.1 µm/px
MAX_DECODE_PIXELS = 50_000_000  # the lowest level, decoded whole for the thumbnail and tissue mask


def inspect_slide(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS,
                  max_decode_pixels: int = MAX_DECODE_PIXELS) -> SlideInfo:
    """Read a slide's metadata and prove its pixel data decodes; raises SlideError.

    The declared dimensions are checked before any pixel is decoded: a small file can claim a huge
    image, and the thumbnail decodes the lowest level whole (a 229 KB TIFF claiming 16384² took
    2.8 GB). Level 0 may have at most `max_pixels`, the lowest level at most `max_decode_pixels`.
    """
    import openslide

    path = str(path)
    _check_tiff_structure(path)
    slide = open_slide(path)
    try:
        props = dict(slide.properties)
        width, height = slide.dimensions
        if width < 1 or height < 1:
            raise SlideError("the image has no pixels")
        check_declared_size(slide.level_dimensions, max_pixels, max_decode_pixels)
        problem = pyramid_problem(slide.level_dimensions, slide.level_downsamples)
        if problem is not None:
            raise SlideError(problem)
        _probe_pixels(slide)
        fmt = props.get(openslide.PROPERTY_NAME_VENDOR) or _fallback_format(slide, path)
        mpp_x = plausible_mpp(props.get(openslide.PROPERTY_NAME_MPP_X))
        declared_y = props.get(openslide.PROPERTY_NAME_MPP_Y)
        # y falls back to x only when the file declares no y at all: a declared but implausible y
        # (0.5 x 352 µm) is a resolution nobody can trust, so neither is taken (the slide asks for one)
        # rather than the pixels silently made square.
        mpp_y = mpp_x if declared_y in (None, "") else plausible_mpp(declared_y)
        if mpp_x is None or mpp_y is None:
            mpp_x = mpp_y = None
        if fmt == "generic-tiff":
            mpp_x, mpp_y = _generic_tiff_level0(path, int(width), int(height), mpp_x, mpp_y)
        if fmt == "dicom":
            _check_dicom_series(path)
        return SlideInfo(
            format=fmt,
            vendor=_vendor_name(fmt),
            width=int(width),
            height=int(height),
            level_count=int(slide.level_count),
            level_dimensions=[list(map(int, d)) for d in slide.level_dimensions],
            level_downsamples=[float(d) for d in slide.level_downsamples],
            mpp_x=mpp_x,
            mpp_y=mpp_y,
            objective_power=_float_or_none(props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)),
            properties=technical_properties(props),
            associated_images=sorted(slide.associated_images),
        )
    except openslide.OpenSlideError as exc:
        raise SlideError(f"the slide's image data is corrupt or truncated: {_clean(exc, path)}") from None
    except OSError as exc:
        raise SlideError(f"the image data is corrupt or truncated: {_clean(exc, path)}") from None
    except MemoryError:  # a last line: the size checks above should make this unreachable
        raise SlideError("the image is too large to decode within the memory limit") from None
    finally:
        slide.close()


# The reader properties kept on the Slide row (shown in the admin, copied into the audit trail): only
# keys known to be technical. A file's metadata also says who the patient is (DICOM PatientName,
# PatientID, PatientBirthDate, AccessionNumber, ReferringPhysicianName), carries file names that are
# often the accession or the patient's name (aperio.Filename, tiff.DocumentName) and free text
# (ImageDescription, openslide.comment): an allowlist, since no denylist knows every vendor's keys.
# The file itself is kept as scanned; pathologists see its label through the associated images.
_TECHNICAL_PROPERTY = re.compile(
    r"openslide\.(vendor|mpp-x|mpp-y|objective-power|level-count|background-color|icc-size|quickhash-1"
    r"|bounds-(x|y|width|height)|level\[\d+\]\.(width|height|downsample|tile-width|tile-height)"
    r"|associated\.\w+\.(width|height))"
    r"|tiff\.(ResolutionUnit|XResolution|YResolution|Make|Model|Software)"
    r"|aperio\.(AppMag|MPP|OriginalWidth|OriginalHeight)"
    r"|hamamatsu\.(SourceLens|Product)"
    r"|dicom\.(SeriesInstanceUID|Modality|SOPClassUID|TransferSyntaxUID|Manufacturer|ManufacturerModelName"
    r"|SoftwareVersions|ImageType\[\d\]|TotalPixelMatrix(Columns|Rows)|PhotometricInterpretation"
    r"|SharedFunctionalGroupsSequence\[0\]\.PixelMeasuresSequence\[0\]\.PixelSpacing\[[01]\])")


def technical_properties(props: dict[str, str]) -> dict[str, str]:
    """The reader properties safe to store with the slide: technical keys only (see _TECHNICAL_PROPERTY)."""
    return {k: v for k, v in props.items() if _TECHNICAL_PROPERTY.fullmatch(k) and len(v) < 2000}


def check_declared_size(level_dimensions, max_pixels: int, max_decode_pixels: int) -> None:
    """Refuse, from the header alone, a slide too large to store or whose lowest level is too large to
    decode whole (a single-level image is its own lowest level); raises SlideError."""
    width, height = (int(v) for v in level_dimensions[0])
    if width * height > max_pixels:
        raise SlideError(f"the image claims {width}x{height} = {width * height:,} pixels, more than the limit of "
                         f"{max_pixels:,} pixels")
    low_w, low_h = (int(v) for v in level_dimensions[-1])
    if low_w * low_h > max_decode_pixels:
        what = "the image" if len(level_dimensions) == 1 else "its lowest-resolution level"
        raise SlideError(f"{what} has {low_w}x{low_h} = {low_w * low_h:,} pixels, more than the "
                         f"{max_decode_pixels:,} pixels decoded whole for a thumbnail: store it as a tiled "
                         f"pyramidal TIFF (e.g. vips tiffsave --tile --pyramid)")


def write_thumbnail(path: str | os.PathLike, out_path: str | os.PathLike) -> None:
    slide = open_slide(path)
    try:
        slide.get_thumbnail(THUMBNAIL_SIZE).convert("RGB").save(out_path, format="PNG")
    finally:
        slide.close()


# The associated images a pathologist may open (the paper label and the whole-glass macro photo);
# at most this many pixels each, checked before decoding (a real label or macro is under 2 Mpx).
ASSOCIATED_IMAGE_NAMES = ("label", "macro")
MAX_ASSOCIATED_PIXELS = 25_000_000


def read_associated_image(path: str | os.PathLike, name: str) -> bytes:
    """The slide file's associated image `name` (label or macro) as PNG bytes; raises KeyError when
    the file holds no such image, SlideError when it cannot be read or declares a huge one."""
    import openslide

    if name not in ASSOCIATED_IMAGE_NAMES:
        raise KeyError(name)
    slide = open_slide(path)
    try:
        if name not in list(slide.associated_images):  # names only: `in` on the mapping decodes
            raise KeyError(name)
        osr = getattr(slide, "_osr", None)
        if osr is not None:
            width, height = openslide.lowlevel.get_associated_image_dimensions(osr, name)
            if width * height > MAX_ASSOCIATED_PIXELS:
                raise SlideError(f"the {name} image declares {width}×{height} pixels, more than this platform opens")
        image = slide.associated_images[name].convert("RGB")
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()
    except openslide.OpenSlideError as exc:
        raise SlideError(f"the {name} image could not be read: {_clean(exc, str(path))}") from None
    finally:
        slide.close()


def validate_slide(path: str, thumbnail_path: str, max_pixels: int = MAX_PIXELS,
                   max_decode_pixels: int = MAX_DECODE_PIXELS) -> SlideInfo:
    """inspect_slide, then write the thumbnail: everything an upload decodes, in one call that
    cases.isolation runs in a child process under a memory ceiling."""
    info = inspect_slide(path, max_pixels=max_pixels, max_decode_pixels=max_decode_pixels)
    write_thumbnail(path, thumbnail_path)
    return info


def _probe_pixels(slide) -> None:
    """Decode the lowest level, level-0 tiles at the corners and centre, and every level's corners.

    A truncated or corrupt file often opens fine and only fails when its pixels are read; in a
    DICOM series each level is a file of its own, so every level is read where its data ends.
    """
    slide.get_thumbnail((256, 256))
    size = 256
    for level, (width, height) in enumerate(slide.level_dimensions):
        points = [(0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1)]
        if level == 0:
            points.append((width // 2, height // 2))
        downsample = slide.level_downsamples[level]
        for x, y in points:
            x0, y0 = max(0, min(x, width - size)), max(0, min(y, height - size))
            slide.read_region((int(x0 * downsample), int(y0 * downsample)), level,
                              (min(size, width), min(size, height)))


def check_series_members(paths: list[str | os.PathLike]) -> None:
    """Every file of a multi-file slide must be a DICOM instance of the one slide OpenSlide opens.

    OpenSlide's DICOM driver opens one file and adds the siblings of its series from the same
    folder, silently skipping files it cannot parse and files of another series; so each file is
    opened on its own here, and all must give the same series and pyramid. Raises SlideError.
    """
    import openslide

    seen = {}
    for path in paths:
        path, name = str(path), Path(path).name
        try:
            if openslide.OpenSlide.detect_format(path) != "dicom":
                raise SlideError(f"{name} is not a DICOM slide file; only a DICOM series can be several files")
            with openslide.OpenSlide(path) as slide:
                seen[name] = (slide.properties.get("dicom.SeriesInstanceUID"), tuple(slide.level_dimensions))
        except openslide.OpenSlideError as exc:
            raise SlideError(f"{name} could not be read with the rest of the series: {_clean(exc, path)}") from None
    if len(set(seen.values())) > 1:
        raise SlideError("the files belong to different slides (DICOM series); upload one series at a time")


# A level's pixel spacing times its size must give level 0's extent on the glass within this fraction
# (plus one of its own pixels, for the rounding of its size).
DICOM_EXTENT_TOLERANCE = 0.03


def _dicom_series_headers(path: str) -> list[tuple[str, object]]:
    """(file name, header) of every DICOM file beside `path` in its series: the files OpenSlide's DICOM
    driver assembles into the slide (it reads the whole folder). Pixel data is not read."""
    import pydicom

    main = pydicom.dcmread(path, stop_before_pixels=True)
    series = main.get("SeriesInstanceUID")
    headers = []
    for member in sorted(Path(path).parent.iterdir()):
        try:
            if not member.is_file():
                continue
            with open(member, "rb") as fh:
                fh.seek(128)
                if fh.read(4) != b"DICM":
                    continue
            header = pydicom.dcmread(member, stop_before_pixels=True)
        except Exception:  # noqa: BLE001  OpenSlide skips what it cannot parse; check_series_members names it
            continue
        if header.get("SeriesInstanceUID") == series:
            headers.append((member.name, header))
    return headers


DICOM_IDENTIFIERS = ("PatientID", "AccessionNumber")


def dicom_identifiers(paths: list[str]) -> dict[str, str]:
    """The PatientID and AccessionNumber the DICOM files among `paths` name (a key only when some file
    names it); other files are skipped. Files of one slide naming two patients or accessions are a
    SlideError. Reads headers only (no pixel data); the caller runs it in a guarded child process."""
    import pydicom

    found: dict[str, dict[str, str]] = {key: {} for key in DICOM_IDENTIFIERS}
    for path in paths:
        try:
            with open(path, "rb") as fh:
                fh.seek(128)
                if fh.read(4) != b"DICM":
                    continue
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001  not a readable DICOM: validation says why
            continue
        for key in DICOM_IDENTIFIERS:
            value = str(header.get(key) or "").strip()
            if value:
                found[key].setdefault(value, Path(path).name)
    for key, values in found.items():
        if len(values) > 1:
            named = " and ".join(f"{value!r} ({name})" for value, name in values.items())
            raise SlideError(f"the files name different {key}s: {named}; they are not one slide")
    return {key: next(iter(values)) for key, values in found.items() if values}


def _image_type(header) -> str:
    value = header.get("ImageType") or []
    return str(value[2]).upper() if len(value) > 2 else ""


def _pixel_spacing_mm(header) -> tuple[float, float] | None:
    """(x, y) mm per pixel: DICOM's PixelSpacing is (between rows, between columns), i.e. (y, x)."""
    try:
        spacing = header.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        row, column = float(spacing[0]), float(spacing[1])
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None
    return (column, row) if row > 0 and column > 0 and math.isfinite(row) and math.isfinite(column) else None


def _check_dicom_series(path: str) -> None:
    """Refuse a DICOM series whose levels show identifying text or not the same area of the glass.

    The levels are what everyone sees, annotators too (the pseudonymous viewer and thumbnail): an image
    whose header says the label or other identifying text is burned into its pixels
    (BurnedInAnnotation, SpecimenLabelInImage YES) cannot be shown to them, and the platform cannot
    redact it. OpenSlide takes each level's place in the pyramid from its pixel size alone and the
    resolution from level 0; a level whose own pixel spacing says it covers another area (a crop, an
    image of another scan given the series' UID) would be read as a reduced copy of level 0.
    Raises SlideError.
    """
    levels = []
    for name, header in _dicom_series_headers(path):
        if _image_type(header) not in ("VOLUME", "THUMBNAIL"):  # LABEL, OVERVIEW: shown to pathologists only
            continue
        burned = [tag for tag in ("BurnedInAnnotation", "SpecimenLabelInImage")
                  if str(header.get(tag) or "").strip().upper() == "YES"]
        if burned:
            raise SlideError(f"{name}: the image declares {' and '.join(f'{tag} YES' for tag in burned)}: identifying "
                             "text (such as the slide label) is part of the scanned image, which annotators would "
                             "see. Export the scan without it (only the label and overview images may show the label)")
        if _image_type(header) != "VOLUME":  # a THUMBNAIL is an associated image, not a level
            continue
        spacing = _pixel_spacing_mm(header)
        try:
            size = (int(header.TotalPixelMatrixColumns), int(header.TotalPixelMatrixRows))
        except (AttributeError, TypeError, ValueError):
            continue
        if spacing is not None:
            levels.append((name, size, spacing))
    if len(levels) < 2:
        return
    _, (width0, height0), (sx0, sy0) = max(levels, key=lambda level: level[1][0] * level[1][1])
    extent0 = (width0 * sx0, height0 * sy0)
    for name, (width, height), (sx, sy) in levels:
        extent = (width * sx, height * sy)
        if any(abs(e - e0) > DICOM_EXTENT_TOLERANCE * e0 + s for e, e0, s in zip(extent, extent0, (sx, sy))):
            raise SlideError(
                f"{name}: a level of {width}×{height} px at {sx * 1000:g}×{sy * 1000:g} µm/px covers "
                f"{extent[0]:.3g}×{extent[1]:.3g} mm of the glass, but the full-resolution level covers "
                f"{extent0[0]:.3g}×{extent0[1]:.3g} mm ({width0}×{height0} px at {sx0 * 1000:g} µm/px): its pixel "
                "spacing contradicts its size, so the series' resolution cannot be trusted. Export the series again "
                "from the scanner")


def _check_tiff_structure(path: str) -> None:
    """For TIFF-based files, every tile/strip must lie inside the file (catches truncation)."""
    import tifffile

    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise SlideError(f"cannot read the file: {exc.strerror}") from None
    if magic[:2] not in (b"II", b"MM"):
        return
    size = os.path.getsize(path)
    if _first_ifd_offset(path, magic) >= size:
        raise SlideError("the file is truncated: its image directory lies past its end")
    problems = _TifffileProblems()
    logging.getLogger("tifffile").addHandler(problems)
    try:
        with tifffile.TiffFile(path) as tif:
            pages = list(tif.pages)
            if problems.messages:  # tifffile logs and skips IFDs it cannot reach
                raise SlideError(f"the file is truncated or damaged: {problems.messages[0]}")
            for page in pages:
                offsets, counts = page.dataoffsets, page.databytecounts
                if offsets and max(o + c for o, c in zip(offsets, counts)) > size:
                    raise SlideError("the file is truncated: image data runs past its end")
    except SlideError:
        raise
    except Exception as exc:  # tifffile raises many types on a damaged header
        raise SlideError(f"the TIFF structure is damaged: {exc}") from None
    finally:
        logging.getLogger("tifffile").removeHandler(problems)


class _TifffileProblems(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(re.sub(r"<tifffile\.\w+ @\d+> ", "", record.getMessage()))


def _first_ifd_offset(path: str, magic: bytes) -> int:
    order = "<" if magic[:2] == b"II" else ">"
    with open(path, "rb") as fh:
        header = fh.read(16)
    if len(header) < 8:
        return 1 << 62
    version = struct.unpack(order + "H", header[2:4])[0]
    if version == 43 and len(header) >= 16:  # BigTIFF
        return struct.unpack(order + "Q", header[8:16])[0]
    return struct.unpack(order + "I", header[4:8])[0]


@dataclass
class _TiffPage:
    index: int  # 0-based, among the file's top-level pages (not SubIFDs)
    width: int
    height: int
    tiled: bool
    mpp_x: float | None  # from its own resolution tags
    mpp_y: float | None

    @property
    def pixels(self) -> int:
        return self.width * self.height


# TIFF ResolutionUnit -> µm per unit; the units OpenSlide reads (2 inch, 3 centimetre). Any other is no resolution.
_TIFF_UNIT_UM = {2: 25400.0, 3: 10000.0}


def _tiff_pages(path: str) -> list[_TiffPage] | None:
    """The top-level pages of a TIFF with their sizes and own resolutions; None if not a TIFF."""
    import tifffile

    try:
        with open(path, "rb") as fh:
            if fh.read(2) not in (b"II", b"MM"):
                return None
        with tifffile.TiffFile(path) as tif:
            return [_TiffPage(i, int(page.imagewidth), int(page.imagelength), bool(page.is_tiled),
                              _tag_mpp(page, "XResolution"), _tag_mpp(page, "YResolution"))
                    for i, page in enumerate(tif.pages)]
    except SlideError:
        raise
    except Exception as exc:  # tifffile raises many types on a damaged header
        raise SlideError(f"the TIFF structure is damaged: {exc}") from None


def _tag_mpp(page, name: str) -> float | None:
    unit_tag, tag = page.tags.get("ResolutionUnit"), page.tags.get(name)
    unit = _TIFF_UNIT_UM.get(int(unit_tag.value) if unit_tag is not None else 2)  # TIFF's default unit: inch
    if unit is None or tag is None:
        return None
    try:
        numerator, denominator = tag.value
        per_unit = numerator / denominator
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return plausible_mpp(unit / per_unit) if per_unit > 0 else None


def _check_first_page_is_largest(path: str) -> None:
    """A TIFF OpenSlide refuses is read as a plain image: its first page only. When another page is
    larger (a thumbnail first, the real scan after it), that would store the thumbnail as the slide."""
    pages = _tiff_pages(path)
    if not pages or len(pages) < 2:
        return
    first, largest = pages[0], max(pages, key=lambda p: p.pixels)
    if largest.pixels > first.pixels:
        raise SlideError(f"the TIFF's first image ({first.width}×{first.height} px) is not its largest (image "
                         f"{largest.index + 1}: {largest.width}×{largest.height} px); read as a plain image only the "
                         "first would be kept. Store the full-resolution image first, as a tiled pyramidal TIFF "
                         "(e.g. vips tiffsave --tile --pyramid)")


def _generic_tiff_level0(path: str, width: int, height: int, mpp_x: float | None,
                         mpp_y: float | None) -> tuple[float | None, float | None]:
    """Check a generic TIFF's level 0 against the file's pages; the resolution to trust, or (None, None).

    OpenSlide's generic-TIFF driver takes the first page and the pages flagged reduced-resolution as
    the pyramid, and its mpp from the first page's resolution tags. A small thumbnail written first
    (at 8 µm/px) then gave the whole slide 8 µm/px, and a full-resolution page not flagged reduced was
    left out: the slide stored was the lower levels. So a page larger than level 0 is refused, and the
    resolution is the level-0 page's own, kept only when OpenSlide's value agrees with it.
    """
    pages = _tiff_pages(path) or []
    larger = [p for p in pages if p.pixels > width * height]
    if larger:
        page = max(larger, key=lambda p: p.pixels)
        raise SlideError(f"the file holds an image larger ({page.width}×{page.height} px, image {page.index + 1}) than "
                         f"the pyramid OpenSlide reads from it (full resolution {width}×{height} px): the scan would "
                         "be stored without its full resolution. Store the full-resolution image first, as a tiled "
                         "pyramidal TIFF (e.g. vips tiffsave --tile --pyramid)")
    if mpp_x is None or mpp_y is None:
        return None, None
    level0 = [p for p in pages if (p.width, p.height) == (width, height)]
    for page in level0:
        page_y = page.mpp_y if page.mpp_y is not None else page.mpp_x
        if page.mpp_x is None or page_y is None or not (_close(page.mpp_x, mpp_x) and _close(page_y, mpp_y)):
            return None, None
    return (mpp_x, mpp_y) if level0 else (None, None)


def _close(a: float, b: float, tolerance: float = 0.01) -> bool:
    return abs(a - b) <= tolerance * max(abs(a), abs(b))


def is_ome_tiff(path: str) -> bool:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return bool(tif.is_ome)
    except Exception:
        return False


def _fallback_format(slide, path: str) -> str:
    from slideio.ometiff import OmeTiffSlide

    if isinstance(slide, OmeTiffSlide):
        return "ome-tiff"
    return "image-" + (Path(path).suffix.lower().lstrip(".") or "unknown")


def _vendor_name(fmt: str) -> str:
    names = {
        "aperio": "Leica Aperio",
        "hamamatsu": "Hamamatsu",
        "dicom": "DICOM",
        "generic-tiff": "Generic tiled TIFF",
        "ome-tiff": "OME-TIFF",
        "leica": "Leica",
        "mirax": "3DHISTECH MIRAX",
        "philips": "Philips",
        "sakura": "Sakura",
        "trestle": "Trestle",
        "ventana": "Roche Ventana",
        "zeiss": "Zeiss",
    }
    return names.get(fmt, "Plain image" if fmt.startswith("image-") else fmt)


def plausible_mpp(value) -> float | None:
    number = _float_or_none(value)
    if number is None or not (PLAUSIBLE_MPP[0] <= number <= PLAUSIBLE_MPP[1]):
        return None
    return number


def _float_or_none(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# libdicom's words for a second image of a level OpenSlide already has (two files of one level).
_DICOM_SAME_LEVEL = re.compile(r"(?:Reading (?P<file>[^:]+): )?Slide contains unexpected image \([^)]*\)")


def _clean(exc: Exception, path: str) -> str:
    """Error text for the user: no server-side path (the staging folder's name says nothing to the user
    and shows the server's layout), every file named by its own name; libdicom's terms in plain words."""
    text = str(exc).replace(f"Reading {path}: ", "")
    folder = os.path.dirname(path)
    if folder:
        # OpenSlide's DICOM driver reads the whole folder: its errors name the sibling files too.
        text = text.replace(folder + os.sep, "")
    text = text.replace(path, Path(path).name)

    def same_level(match):
        other = match.group("file")
        return (f"{other + ' and another file are' if other else 'the series holds'} two images of the same level "
                "in the series; upload one image per level")

    return _DICOM_SAME_LEVEL.sub(same_level, text)
