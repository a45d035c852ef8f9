"""Point sets to and from QuPath-compatible GeoJSON and CSV ``x,y,label`` (pure functions).

Coordinates are level-0 slide pixels with pixel centres at integers, as QuPath writes them
for the full-resolution image.  Readers never return a partial result: every offending
feature or line is collected and reported in one FormatError.
"""

from __future__ import annotations

import csv
import io
import json
import math

from analysis import pointcsv

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


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


# ----------------------------------------------------------------------------
# GeoJSON
# ----------------------------------------------------------------------------


def to_geojson(points, labels: list[dict]) -> dict:
    """A FeatureCollection with one MultiPoint feature per label (QuPath's point annotations)."""
    by_label: dict[str, list] = {}
    for x, y, label in points:
        by_label.setdefault(label, []).append([x, y])
    colours = {lab["name"]: lab.get("colour", "#888888") for lab in labels}
    order = [lab["name"] for lab in labels] + sorted(set(by_label) - set(colours))
    features = []
    for name in order:
        if name not in by_label:
            continue
        features.append({
            "type": "Feature",
            "geometry": {"type": "MultiPoint", "coordinates": by_label[name]},
            "properties": {
                "objectType": "annotation",
                "classification": {"name": name, "color": hex_to_rgb(colours.get(name, "#888888"))},
            },
        })
    return {"type": "FeatureCollection", "features": features}


def _classification(feature: dict) -> str | None:
    props = feature.get("properties")
    if not isinstance(props, dict):
        return None
    cls = props.get("classification")
    if isinstance(cls, dict) and isinstance(cls.get("name"), str):
        return cls["name"]
    if isinstance(cls, str):
        return cls
    for key in ("label", "name"):
        if isinstance(props.get(key), str):
            return props[key]
    return None


def parse_geojson(text) -> list[tuple[float, float, str]]:
    """Points (x, y, raw label name) of a GeoJSON FeatureCollection / Feature / list of features.

    Only Point and MultiPoint geometries carry nuclei; anything else is an error.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("GeoJSON is not UTF-8 text") from None
    if isinstance(text, str):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FormatError(f"malformed GeoJSON: not valid JSON ({exc})") from None
        except RecursionError:
            raise FormatError("malformed GeoJSON: nested too deeply") from None
    else:
        data = text
    if isinstance(data, list):
        features = data
    elif isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise FormatError("malformed GeoJSON: a FeatureCollection needs a 'features' list")
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    else:
        raise FormatError("malformed GeoJSON: expected a FeatureCollection, a Feature or a list of features")

    out, problems = [], []
    for n, feature in enumerate(features):
        where = f"feature {n}"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            problems.append(f"{where}: not a GeoJSON Feature")
            continue
        geometry = feature.get("geometry")
        if not isinstance(geometry, dict):
            problems.append(f"{where}: no geometry")
            continue
        kind = geometry.get("type")
        coords = geometry.get("coordinates")
        if kind == "Point":
            coords = [coords]
        elif kind != "MultiPoint":
            problems.append(f"{where}: geometry type {kind!r} is not a Point or MultiPoint")
            continue
        label = _classification(feature)
        if label is None:
            problems.append(f"{where}: no classification name (properties.classification.name)")
            continue
        if not isinstance(coords, list):
            problems.append(f"{where}: coordinates must be a list")
            continue
        for k, c in enumerate(coords):
            xy = [_number(v) for v in c] if isinstance(c, list) and len(c) in (2, 3) else None
            if xy is None or xy[0] is None or xy[1] is None:
                problems.append(f"{where} point {k}: coordinates must be [x, y] numbers, got {c!r}")
                continue
            out.append((xy[0], xy[1], label))
    if problems:
        raise FormatError("GeoJSON rejected", problems)
    return out


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
        rows, problems = pointcsv.read_rows(text)
    except pointcsv.BadHeader as exc:
        raise FormatError(str(exc)) from None
    if problems:
        raise FormatError("CSV rejected", problems)
    return [(x, y, label) for _, x, y, label in rows]
