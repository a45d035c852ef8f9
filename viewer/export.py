"""The corrected point set exported as training annotations (CSV or QuPath GeoJSON)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from analysis import geojson
from analysis.labels import LABEL_NAMES
from viewer.choices import ExportFormat
from viewer.errors import ViewerInputError
from viewer.overlay import POINT_SOURCES, CorrectionState, corrected_points_with_source


def export_annotations(store, state: CorrectionState, fmt: str, meta: dict | None = None,
                       regions=None) -> tuple[bytes, str]:
    """The full corrected point set (model output + corrections) as training annotations.

    Each point says where it comes from (`source`: model = the detector's unreviewed output, relabelled =
    a pathologist's class, added = a pathologist's cell) and whether the slide's drawn regions count it
    (`in_regions`): re-imported as annotations, unreviewed model output must not pass for human labels.
    csv: header x,y,label,source,in_regions (level-0 px, label positive|negative|<code>); geojson: a
    QuPath-style FeatureCollection with one MultiPoint annotation per class, source and in_regions.
    Returns (body, content type).
    """
    xy, labels, source = corrected_points_with_source(store, state)
    counted = regions.mask(xy) if regions else np.ones(len(labels), bool)
    names = np.asarray([LABEL_NAMES.get(int(c), str(int(c))) for c in range(-128, 128)], dtype=object)
    label_names = names[labels.astype(np.int16) + 128] if len(labels) else np.zeros(0, object)
    source_names = np.asarray(POINT_SOURCES, dtype=object)[source] if len(source) else np.zeros(0, object)
    if fmt == ExportFormat.CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["x", "y", "label", "source", "in_regions"])
        writer.writerows(zip(np.round(xy[:, 0], 1).tolist(), np.round(xy[:, 1], 1).tolist(), label_names.tolist(),
                             source_names.tolist(), np.where(counted, "yes", "no").tolist()))
        return out.getvalue().encode(), "text/csv"
    if fmt == ExportFormat.GEOJSON:
        classes = geojson.qupath_classes()
        features = []
        groups = sorted(set(zip(label_names.tolist(), source_names.tolist(), counted.tolist())),
                        key=lambda g: (g[0], POINT_SOURCES.index(g[1]), not g[2]))
        for name, origin, inside in groups:
            sel = (label_names == name) & (source_names == origin) & (counted == inside)
            qp_name, colour = classes.get(name, (name, geojson.OTHER_RGB))
            features.append(geojson.class_feature(qp_name, colour, np.round(xy[sel], 1).tolist(), isLocked=False,
                                                  count=int(sel.sum()), source=origin, in_regions=bool(inside)))
        body = geojson.feature_collection(features, meta or {})
        return json.dumps(body).encode(), "application/geo+json"
    raise ViewerInputError(f"format must be one of {', '.join(ExportFormat.values)}")
