"""The one GeoJSON writer and reader of point sets, in QuPath's layout (level-0 px, pixel centres at
integers): annotations' import and export, the viewer's corrected-point export and detect_nuclei's
detections all go through here.

Writing: one MultiPoint feature per class (QuPath point annotations) or one Point feature per
detection with its measurements. Reading: Point and MultiPoint features with a class name; every
offending feature is collected into one GeoJSONError, never a partial result.
"""

from __future__ import annotations

import json
import math

from analysis.labels import LABEL_NAMES, LABEL_RGB, NEGATIVE, POSITIVE

QUPATH_NAMES = {POSITIVE: "Positive", NEGATIVE: "Negative"}  # QuPath's own classes for the two labels
OTHER_RGB = [128, 128, 128]


class GeoJSONError(ValueError):
    """Malformed GeoJSON; `problems` lists every offending feature."""

    def __init__(self, summary: str, problems: list[str] | None = None):
        self.summary, self.problems = summary, list(problems or [])
        super().__init__(summary)


def label_rgb(code: int) -> list[int]:
    return list(LABEL_RGB.get(int(code), OTHER_RGB))


def qupath_classes() -> dict[str, tuple[str, list[int]]]:
    """Label name -> (QuPath class name, colour): the platform's vocabulary as QuPath shows it."""
    return {LABEL_NAMES[code]: (name, label_rgb(code)) for code, name in QUPATH_NAMES.items()}


def feature_collection(features: list[dict], properties: dict | None = None) -> dict:
    body = {"type": "FeatureCollection", "features": features}
    if properties is not None:
        body["properties"] = properties
    return body


def class_feature(name: str, colour, coordinates: list, object_type: str = "annotation", **properties) -> dict:
    """One class's points as a MultiPoint feature (a QuPath point annotation)."""
    return {"type": "Feature", "geometry": {"type": "MultiPoint", "coordinates": coordinates},
            "properties": {"objectType": object_type, **properties,
                           "classification": {"name": name, "color": list(colour)}}}


def point_feature(x: float, y: float, name: str, colour, object_type: str = "detection",
                  measurements: dict | None = None) -> dict:
    """One point as a Point feature (a QuPath detection), with its measurements."""
    properties = {"objectType": object_type, "classification": {"name": name, "color": list(colour)}}
    if measurements is not None:
        properties["measurements"] = measurements
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]}, "properties": properties}


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        v = float(v)
    except OverflowError:  # an integer too large for a float (JSON allows any number of digits)
        return None
    return v if math.isfinite(v) else None


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


def read_points(text, refuse_model_points: bool = False) -> list[tuple[float, float, str]]:
    """Points (x, y, class name as written) of a FeatureCollection, a Feature or a list of features
    (text, bytes or parsed JSON). Only Point and MultiPoint geometries carry nuclei; anything else is
    an error. With `refuse_model_points`, a feature that is a detector's output (source "model" in a viewer
    export, or objectType "detection") is an error too. Raises GeoJSONError."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise GeoJSONError("GeoJSON is not UTF-8 text") from None
    if isinstance(text, str):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GeoJSONError(f"malformed GeoJSON: not valid JSON ({exc})") from None
        except RecursionError:
            raise GeoJSONError("malformed GeoJSON: nested too deeply") from None
    else:
        data = text
    if isinstance(data, list):
        features = data
    elif isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise GeoJSONError("malformed GeoJSON: a FeatureCollection needs a 'features' list")
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    else:
        raise GeoJSONError("malformed GeoJSON: expected a FeatureCollection, a Feature or a list of features")

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
        properties = feature.get("properties")
        if refuse_model_points and isinstance(properties, dict) and (
                properties.get("source") == "model" or properties.get("objectType") == "detection"):
            # source "model": the viewer's export of unreviewed points; objectType "detection": a detector's
            # output (detect_nuclei, QuPath's cell detection), where a person's points are annotations.
            problems.append(f"{where}: a detector's output (source model or a QuPath detection), not a person's "
                            "labels: import the reviewed points only")
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
        raise GeoJSONError("GeoJSON rejected", problems)
    return out
