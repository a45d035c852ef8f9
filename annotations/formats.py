"""Point sets to and from QuPath-compatible GeoJSON and CSV ``x,y,label`` (pure functions).

Coordinates are level-0 slide pixels with pixel centres at integers, as QuPath writes them
for the full-resolution image.  Readers never return a partial result: every offending
feature or line is collected and reported in one FormatError.
"""

from __future__ import annotations

import csv
import io

from analysis import geojson, pointcsv

MAX_LISTED = 50  # offenders listed in one message (the count is always complete)


class FormatError(ValueError):
    """Malformed input; ``problems`` lists every offending item."""

    def __init__(self, summary: str, problems: list[str] | None = None):
        self.summary = summary
        self.problems = list(problems or [])
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if not self.problems:
            return self.summary
        shown = self.problems[:MAX_LISTED]
        more = f"\n  - ... and {len(self.problems) - MAX_LISTED} more" if len(self.problems) > MAX_LISTED else ""
        return f"{self.summary}: {len(self.problems)} problem(s):\n  - " + "\n  - ".join(shown) + more


def hex_to_rgb(colour: str) -> list[int]:
    colour = colour.lstrip("#")
    try:
        return [int(colour[i:i + 2], 16) for i in (0, 2, 4)]
    except (ValueError, IndexError):
        return [128, 128, 128]


# ----------------------------------------------------------------------------
# GeoJSON (the one writer and reader: analysis.geojson)
# ----------------------------------------------------------------------------


def to_geojson(points, labels: list[dict]) -> dict:
    """A FeatureCollection with one MultiPoint feature per label (QuPath's point annotations)."""
    by_label: dict[str, list] = {}
    for x, y, label in points:
        by_label.setdefault(label, []).append([x, y])
    colours = {lab["name"]: lab.get("colour", "#888888") for lab in labels}
    order = [lab["name"] for lab in labels] + sorted(set(by_label) - set(colours))
    # The two tumour classes as QuPath's own Positive / Negative, in the platform's colours: the same
    # classes as the viewer's and detect_nuclei's exports of the same slide (analysis.geojson); extra
    # labels keep the project's name and colour.
    qupath = geojson.qupath_classes()

    def feature(name):
        shown, colour = qupath.get(name, (name, hex_to_rgb(colours.get(name, "#888888"))))
        return geojson.class_feature(shown, colour, by_label[name])

    return geojson.feature_collection([feature(name) for name in order if name in by_label])


def parse_geojson(text) -> list[tuple[float, float, str]]:
    """Points (x, y, raw label name) of a GeoJSON FeatureCollection / Feature / list of features.

    Only Point and MultiPoint geometries carry nuclei; anything else is an error.
    """
    try:
        return geojson.read_points(text, refuse_model_points=True)
    except geojson.GeoJSONError as exc:
        raise FormatError(exc.summary, exc.problems) from None


# ----------------------------------------------------------------------------
# CSV
# ----------------------------------------------------------------------------


def to_csv(points) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["x", "y", "label"])
    for x, y, label in points:
        writer.writerow([_fmt(x), _fmt(y), label])
    return buf.getvalue()


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def parse_csv(text) -> list[tuple[float, float, str]]:
    """Points of a CSV with the header line exactly ``x,y,label``."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise FormatError("CSV is not UTF-8 text") from None
    try:
        rows, problems = pointcsv.read_rows(text, refuse_model_points=True)
    except pointcsv.BadHeader as exc:
        raise FormatError(str(exc)) from None
    if problems:
        raise FormatError("CSV rejected", problems)
    return [(x, y, label) for _, x, y, label in rows]
