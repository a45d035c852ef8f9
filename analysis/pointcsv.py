"""The one reader of point CSV files: a header line ``x,y,label`` (optional columns after it), then one
point a row.

Annotation imports (annotations.formats.parse_csv) and dataset folders
(analysis.datasets.read_points_csv) both read through it and add their own checks (labels,
bounds) on the rows it returns.
"""

from __future__ import annotations

import csv
import io
import math

HEADER = ("x", "y", "label")
# Columns other exports of this platform add after x,y,label (detect_nuclei: score; the viewer's export:
# source and in_regions); read past, never required.
OPTIONAL_COLUMNS = ("score", "source", "in_regions")
MODEL_SOURCE = "model"  # viewer export: the detector's unreviewed output (viewer.overlay.POINT_SOURCES)


class BadHeader(ValueError):
    """The file does not start with the header line (or is not CSV at all): nothing was read."""


def read_rows(text: str, refuse_model_points: bool = False) -> tuple[list[tuple[int, float, float, str]], list[str]]:
    """(rows as (line number, x, y, label as written, stripped), problems with the other rows).

    The header is x,y,label, optionally followed by OPTIONAL_COLUMNS (read past). Blank lines are
    skipped; a row with another number of columns than the header, or with x, y that are not finite
    numbers, is a problem, listed with its line number. With `refuse_model_points`, a row whose source
    is "model" (the detector's unreviewed output in a viewer export) is a problem too: an annotation is
    a person's label. Raises BadHeader.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise BadHeader(f"malformed CSV ({exc})") from None
    names = [h.strip().lower() for h in header] if header is not None else []
    if names[:3] != list(HEADER) or not set(names[3:]) <= set(OPTIONAL_COLUMNS) or len(set(names)) != len(names):
        raise BadHeader(f"malformed CSV: the header line must be 'x,y,label' (optionally followed by "
                        f"{', '.join(OPTIONAL_COLUMNS)}), got {header!r}")
    source_at = names.index("source") if "source" in names else None
    if refuse_model_points and "score" in names and source_at is None:
        # x,y,label,score is detect_nuclei's output: every row a detector's unreviewed point.
        raise BadHeader("a detector's output (x,y,label,score, as detect_nuclei writes it), not a person's labels: "
                        "import the reviewed points only")
    rows, problems = [], []
    try:
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(names):
                problems.append(f"line {line}: expected {len(names)} columns, got {len(row)}")
                continue
            if refuse_model_points and source_at is not None and row[source_at].strip().lower() == MODEL_SOURCE:
                problems.append(f"line {line}: the detector's unreviewed output (source=model), not a person's "
                                "label: import the reviewed points only")
                continue
            try:
                x, y = float(row[0]), float(row[1])
            except ValueError:
                problems.append(f"line {line}: x and y must be numbers, got {row[0]!r}, {row[1]!r}")
                continue
            if not (math.isfinite(x) and math.isfinite(y)):
                problems.append(f"line {line}: x and y must be finite numbers")
                continue
            rows.append((line, x, y, row[2].strip()))
    except csv.Error as exc:
        problems.append(f"malformed CSV ({exc})")
    return rows, problems
