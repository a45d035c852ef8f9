"""The report as PDF (reportlab): identifiers, scores with the cut-offs used, adequacy, method,
the slide thumbnail with the detection overlay and a density heatmap, signature, page numbers.

`build_pdf(report)` also accepts an unsaved draft without a case (analyze_slide on a bare file).
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

import numpy as np
from pdl1site.conf import settings
from django.utils import timezone
from PIL import Image
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas as pdfcanvas
from reportlab.platypus import Image as RLImage
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from analysis.labels import LABEL_COLOUR_WORDS, LABEL_RGB, NEGATIVE, POSITIVE
from analysis.scoring import interval_range, interval_text
from cases.reports import method_description, qc_statement

THUMB_MAX_PX = 700
MAX_OVERLAY_POINTS = 200_000
POSITIVE_RGB, NEGATIVE_RGB = LABEL_RGB[POSITIVE], LABEL_RGB[NEGATIVE]  # as in the viewer: red, yellow


class _NumberedCanvas(pdfcanvas.Canvas):
    """Two passes so every page can say "page i of n"."""

    def __init__(self, *args, **kwargs):
        self.header_text = kwargs.pop("header_text", "")
        self.footer_text = kwargs.pop("footer_text", "")
        self.footer_note = kwargs.pop("footer_note", "")
        super().__init__(*args, **kwargs)
        self._pages = []

    def showPage(self):
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self._decorate(total)
            super().showPage()
        super().save()

    def _decorate(self, total: int):
        width, height = self._pagesize
        self.setFont("Helvetica", 8)
        self.setFillColor(colors.grey)
        self.drawString(15 * mm, 10 * mm, self.footer_text)
        self.drawRightString(width - 15 * mm, 10 * mm, f"Page {self._pageNumber} of {total}")
        if self.footer_note:
            self.setFont("Helvetica", 6.5)
            self.drawString(15 * mm, 6.5 * mm, self.footer_note)


def _canvas_maker(footer: str, note: str = ""):
    def make(*args, **kwargs):
        return _NumberedCanvas(*args, footer_text=footer, footer_note=note, **kwargs)

    return make


# --- images ---------------------------------------------------------------------------------------

def _thumbnail(slide) -> Image.Image:
    if slide is not None and slide.thumbnail:
        try:
            with slide.thumbnail.open("rb") as fh:
                image = Image.open(fh)
                image.load()
            return image.convert("RGB")
        except (OSError, ValueError):
            pass
    width, height = (slide.width, slide.height) if slide is not None else (4, 3)
    scale = THUMB_MAX_PX / max(width, height)
    return Image.new("RGB", (max(1, round(width * scale)), max(1, round(height * scale))), (235, 235, 235))


def _points(job):
    """Corrected detections (xy level-0 px, labels) and which of them count (the job's drawn regions, by
    the mask its scores are counted with: analysis.regions.Regions.mask, as viewer.overlay.corrected_counts
    applies it), or empty when the job has no store; a store that cannot be read is an error
    (ResultUnreadable), not an empty dot map in a signed document."""
    empty = np.zeros((0, 2)), np.zeros(0, np.int8), np.zeros(0, bool)
    if job is None:
        return empty
    from analysis.regions import regions_from_pairs
    from cases.results import NoResult, ResultUnreadable, job_results

    try:
        xy, labels = job_results().corrected_points(job)
    except ResultUnreadable:
        raise
    except NoResult:
        return empty
    regions = regions_from_pairs(_regions(job))
    counted = regions.mask(xy) if regions else np.ones(len(labels), bool)
    return xy, labels, counted


EXCLUDED_RGB = (150, 150, 150)  # a detection the scores leave out (outside the regions that count)


def overlay_images(slide, job) -> tuple[Image.Image, Image.Image]:
    """(thumbnail with a dot per detection, thumbnail with a positive/all density heatmap).

    Both show what the scores count: the dots of detections outside the drawn regions that count (an
    exclusion, outside the tumour area) are grey, and the heatmap is made of the counted cells only. It
    used to plot every corrected detection of the slide, so its picture included cells the TPS leaves out."""
    base = _thumbnail(slide)
    if max(base.size) > THUMB_MAX_PX:
        base.thumbnail((THUMB_MAX_PX, THUMB_MAX_PX))
    tw, th = base.size
    xy, labels, counted = _points(job)
    sx = tw / slide.width if slide is not None else 1.0
    sy = th / slide.height if slide is not None else 1.0
    if len(labels) > MAX_OVERLAY_POINTS:  # an even subsample keeps the picture and bounds the work
        keep = np.linspace(0, len(labels) - 1, MAX_OVERLAY_POINTS).astype(np.int64)
        xy, labels, counted = xy[keep], labels[keep], counted[keep]
    px = np.clip((xy[:, 0] * sx).astype(np.int64), 0, tw - 1) if len(labels) else np.zeros(0, np.int64)
    py = np.clip((xy[:, 1] * sy).astype(np.int64), 0, th - 1) if len(labels) else np.zeros(0, np.int64)

    dots = np.asarray(base).copy()
    # Left-out detections first (grey, beneath), then the counted ones, positives last, on top.
    layers = ((~counted & np.isin(labels, (NEGATIVE, POSITIVE)), EXCLUDED_RGB),
              (counted & (labels == NEGATIVE), NEGATIVE_RGB), (counted & (labels == POSITIVE), POSITIVE_RGB))
    for sel, rgb in layers:
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                dots[np.clip(py[sel] + dy, 0, th - 1), np.clip(px[sel] + dx, 0, tw - 1)] = rgb
    dots_image = Image.fromarray(dots)
    _draw_regions(dots_image, job, sx, sy)

    cell = max(4, round(max(tw, th) / 48))
    gh, gw = -(-th // cell), -(-tw // cell)
    total = np.zeros((gh, gw))
    positive = np.zeros((gh, gw))
    np.add.at(total, (py[counted] // cell, px[counted] // cell), 1)  # the counted cells only
    sel = counted & (labels == POSITIVE)
    np.add.at(positive, (py[sel] // cell, px[sel] // cell), 1)
    heat = np.asarray(base).astype(np.float32).copy()
    if total.max() > 0:
        density = total / total.max()
        fraction = np.divide(positive, total, out=np.zeros_like(total), where=total > 0)
        alpha = np.kron(np.sqrt(density), np.ones((cell, cell)))[:th, :tw, None] * 0.75
        hue = np.kron(fraction, np.ones((cell, cell)))[:th, :tw, None]
        colour = hue * np.array(POSITIVE_RGB, np.float32) + (1 - hue) * np.array(NEGATIVE_RGB, np.float32)
        heat = heat * (1 - alpha) + colour * alpha
    return dots_image, Image.fromarray(heat.clip(0, 255).astype(np.uint8))


REGION_RGB = {"include": (0, 150, 60), "exclude": (20, 20, 20)}


def _regions(job) -> list:
    """Active drawn regions of the job as (include?, [(x, y), ...] level-0 px)."""
    if job is None or not job.pk:
        return []
    from cases.results import job_results

    return job_results().regions(job)


def _draw_regions(image: Image.Image, job, sx: float, sy: float) -> int:
    """The region map: include regions outlined green, exclude regions black, on the thumbnail."""
    from PIL import ImageDraw

    regions = _regions(job)
    draw = ImageDraw.Draw(image)
    for include, vertices in regions:
        ring = [(x * sx, y * sy) for x, y in vertices]
        draw.line(ring + ring[:1], fill=REGION_RGB["include" if include else "exclude"], width=2)
    return len(regions)


def _rl_image(image: Image.Image, width: float) -> RLImage:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    buf.seek(0)
    height = width * image.size[1] / image.size[0]
    if height > 95 * mm:  # a tall slide: fit the height, keep the aspect ratio
        width, height = width * 95 * mm / height, 95 * mm
    return RLImage(buf, width=width, height=height)


# --- document -------------------------------------------------------------------------------------

def _p(text: str, style) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def _score_rows(part: dict, name: str, adequate: bool = True) -> list[list[str]]:
    # No number for an inadequate specimen (cases.reports.tps_statement): its counts are stated below.
    value = "-" if part["value"] is None or not adequate else f"{part['value']:.2f}%"
    cutoffs = "; ".join(f">= {c['lower']:g}%: {c['label']}" for c in part.get("cutoffs", [])) or "none configured"
    table = part.get("table") or "none"
    approval = "approved" if part.get("approved") else "NOT approved (research use)"
    rows = [[name, value, part.get("category") or part.get("status") or "-",
             f"{table}, {approval}. Cut-offs: {cutoffs}" + (f". Source: {part['source']}" if part.get("source") else "")]]
    if part.get("interval") and adequate:  # no interval nor flag beside a withheld value
        flag = "NEAR CUT-OFF: count manually or review" if part.get("near_cutoff") else ""
        # Rounded outward, as every output prints it and as the flag was read (analysis.scoring.printed_bounds).
        interval = part["interval"]
        rows.append(["", f"{interval_range(interval['low'], interval['high'])}%", flag, interval_text(part)])
    return rows


def build_pdf(report, job=None, record_sha256: str | None = None) -> bytes:
    """The PDF of `report` (a Report; unsaved and without a case is allowed for drafts).

    `record_sha256`: the sha256 of the FHIR bundle stored with this signed version, printed in the
    footer of every page (cases.documents: a PDF cannot state its own hash).
    """
    case = report.case if report.case_id else None
    job = job or (report.job if report.job_id else None)
    slide = job.slide if job is not None else None
    scores = report.scores
    styles = getSampleStyleSheet()
    styles["Heading3"].keepWithNext = 1  # a section heading never ends a page
    small = ParagraphStyle("small", parent=styles["BodyText"], fontSize=8, leading=10)
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=9.5, leading=12)
    status = {"draft": "DRAFT - not signed, not for clinical use", "signed": "FINAL",
              "amended": "SUPERSEDED by a later amended version"}.get(report.status, report.status)
    if report.status == "signed" and report.supersedes_id:
        status = f"AMENDED (supersedes version {report.version - 1})"

    story = [
        _p(settings.PDL1_INSTITUTION_NAME, styles["Title"]),
        _p("PD-L1 immunohistochemistry report", styles["Heading2"]),
        _p(f"Status: {status}", styles["Heading3"]),
    ]
    if case is not None:
        patient = case.patient
        ident = [
            ["Patient", f"{patient.family_name}, {patient.given_name}", "MRN", patient.mrn],
            ["Birth date", str(patient.birth_date), "Sex", patient.get_sex_display()],
            ["Accession", case.accession, "Report version", str(report.version)],
            ["Specimen", case.specimen or "-", "Indication", case.get_indication_display()],
            ["Assay clone", case.assay_clone, "Platform", _platform(case.assay_clone)],
        ]
    else:
        ident = [["Patient", "not registered (analysis of a file without a case)", "", ""],
                 ["Slide", slide.original_name if slide else "-", "Report version", "draft"]]
    story.append(_table([[_p(c, small) for c in row] for row in ident], [28 * mm, 62 * mm, 28 * mm, 62 * mm]))
    story.append(Spacer(1, 4 * mm))

    story.append(_p("Scores", styles["Heading3"]))
    rows = [["Score", "Value", "Category", "Interpretation table"]]
    rows += _score_rows(scores["tps"], "TPS", scores["adequacy"]["adequate"])
    cps = scores["cps"]
    rows += [["CPS", "-" if cps["value"] is None else f"{cps['value']:.1f}", cps.get("category") or cps["status"],
              "CPS = (PD-L1-positive tumour cells + PD-L1-positive lymphocytes and macrophages) / viable tumour "
              "cells x 100, capped at 100."]]
    story.append(_table([[_p(c, small) for c in row] for row in rows], [16 * mm, 18 * mm, 50 * mm, 96 * mm],
                        header=True))
    if scores.get("research_use"):
        story.append(_p("RESEARCH USE ONLY: no approved cut-off is configured for this assay and indication; "
                        "no clinical category is given.", body))
    counts, fit = scores["counts"], scores["adequacy"]
    if scores["tps"].get("cut_note"):
        story.append(_p(scores["tps"]["cut_note"], body))
    story.append(_p(f"Adequacy: {fit['statement']}.", body))
    story.append(_p(f"Counts: {counts['positive']} PD-L1-positive and {counts['negative']} PD-L1-negative viable "
                    f"tumour cells ({scores['viable_tumour_cells']} in all)"
                    + (f", {counts['other']} other detections" if counts.get("other") else "")
                    + (f"; includes pathologist corrections (version {scores['corrections_version']})"
                       if scores.get("corrections_version") else "") + ".", body))

    method = scores.get("method", {})
    story.append(_p("Method", styles["Heading3"]))
    story.append(_p(
        f"Whole slide. {method_description(method)}"
        + (f", tissue area {method['tissue_area_mm2']:.2f} mm2" if method.get("tissue_area_mm2") else "")
        + ". Tumour nuclei are classified PD-L1-positive or -negative; the result was reviewed and, where needed, "
          "corrected by the reporting pathologist. The detector has no immune-cell class, so CPS is not computed. "
          + ("Model trained with SYNTHETIC data. " if method.get("synthetic_training_data") else ""), body))
    if qc_statement(scores):
        story.append(_p(qc_statement(scores), body))
    if report.comment:
        story.append(_p("Comment", styles["Heading3"]))
        story.append(_p(report.comment, body))
    if report.amendment_reason:
        story.append(_p(f"Amendment reason: {report.amendment_reason}", body))

    dots, heat = overlay_images(slide, job)
    # The heading travels with its images: never alone at the foot of a page.
    story.append(KeepTogether([_p("Slide", styles["Heading3"]), _table([[_rl_image(dots, 80 * mm), _rl_image(heat, 80 * mm)],
                         [_p(f"Detections: {LABEL_COLOUR_WORDS[POSITIVE]} PD-L1-positive, "
                             f"{LABEL_COLOUR_WORDS[NEGATIVE]} negative tumour nuclei"
                             + ("; region map: scored areas outlined green (include), excluded areas black; "
                                "grey: detections outside the scored areas, not counted"
                                if _regions(job) else ""), small),
                          _p(f"Heatmap of the counted cells: cell density (opacity), positive fraction "
                             f"({LABEL_COLOUR_WORDS[NEGATIVE]} to {LABEL_COLOUR_WORDS[POSITIVE]})", small)]],
                        [90 * mm, 90 * mm])]))

    signoff = [_p("Sign-off", styles["Heading3"])]
    if report.signed_by_id:
        signer = report.signed_by
        name = signer.get_full_name() or signer.get_username()
        when = timezone.localtime(report.signed_at).strftime("%Y-%m-%d %H:%M %Z")
        signoff.append(_p(f"Electronically signed by {name} ({signer.get_username()}), pathologist, on {when}; "
                        "identity confirmed by password re-entry.", body))
        signoff.append(_p(f"Signature: /{name}/", styles["Heading4"]))
    else:
        signoff.append(_p("Not signed: this draft is not a clinical report.", body))
    story.append(KeepTogether(signoff))

    buf = io.BytesIO()
    footer = (f"{case.accession} v{report.version} - MRN {case.patient.mrn}" if case else "draft") + \
        f" - generated {timezone.localtime().strftime('%Y-%m-%d %H:%M')}"
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=18 * mm, title="PD-L1 IHC report", author=settings.PDL1_INSTITUTION_NAME)
    note = (f"FHIR record sha256 {record_sha256} - this PDF's own sha256 is in the download's Repr-Digest header"
            if record_sha256 else "Not a signed record: rendered for this download only")
    doc.build(story, canvasmaker=_canvas_maker(footer, note))
    return buf.getvalue()


def _platform(clone: str) -> str:
    return {"22C3": "Dako Autostainer Link 48 (PD-L1 IHC 22C3 pharmDx)",
            "SP263": "VENTANA BenchMark (VENTANA PD-L1 (SP263) Assay)",
            "SP142": "VENTANA BenchMark (VENTANA PD-L1 (SP142) Assay)",
            "28-8": "Dako Autostainer Link 48 (PD-L1 IHC 28-8 pharmDx)"}.get(clone, "laboratory-developed")


def _table(rows, widths, header=False) -> Table:
    table = Table(rows, colWidths=widths)
    style = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("GRID", (0, 0), (-1, -1), 0.25, colors.lightgrey)]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke))
    table.setStyle(TableStyle(style))
    return table
