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
from viewer.overlay import CorrectionState, corrected_points


def export_annotations(store, state: CorrectionState, fmt: str, meta: dict | None = None) -> tuple[bytes, str]:
    """The full corrected point set (model output + corrections) as training annotations.

    csv: header x,y,label (level-0 px, label positive|negative|<code>); geojson: a QuPath-style
    FeatureCollection with one MultiPoint annotation per class. Returns (body, content type).
    """
    xy, labels = corrected_points(store, state)
    names = np.asarray([LABEL_NAMES.get(int(c), str(int(c))) for c in range(-128, 128)], dtype=object)
    label_names = names[labels.astype(np.int16) + 128] if len(labels) else np.zeros(0, object)
    if fmt == ExportFormat.CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["x", "y", "label"])
        writer.writerows(zip(np.round(xy[:, 0], 1).tolist(), np.round(xy[:, 1], 1).tolist(), label_names.tolist()))
        return out.getvalue().encode(), "text/csv"
    if fmt == ExportFormat.GEOJSON:
        classes = geojson.qupath_classes()
        features = []
        for name in sorted(set(label_names.tolist())):
            sel = label_names == name
            qp_name, colour = classes.get(name, (name, geojson.OTHER_RGB))
            features.append(geojson.class_feature(qp_name, colour, np.round(xy[sel], 1).tolist(), isLocked=False,
                                                  count=int(sel.sum())))
        body = geojson.feature_collection(features, meta or {})
        return json.dumps(body).encode(), "application/geo+json"
    raise ViewerInputError(f"format must be one of {', '.join(ExportFormat.values)}")
