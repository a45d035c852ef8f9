"""The one reader of point CSV files: a header line ``x,y,label``, then one point a row.

Annotation imports (annotations.formats.parse_csv) and dataset folders
(analysis.datasets.read_points_csv) both read through it and add their own checks (labels,
bounds) on the rows it returns.
"""

from __future__ import annotations

import csv
import io
import math

HEADER = ("x", "y", "label")


class BadHeader(ValueError):
    """The file does not start with the header line (or is not CSV at all): nothing was read."""


def read_rows(text: str) -> tuple[list[tuple[int, float, float, str]], list[str]]:
    """(rows as (line number, x, y, label as written, stripped), problems with the other rows).

    Blank lines are skipped; a row without exactly three columns or with x, y that are not finite
    numbers is a problem, listed with its line number. Raises BadHeader.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise BadHeader(f"malformed CSV ({exc})") from None
    if header is None or [h.strip().lower() for h in header] != list(HEADER):
        raise BadHeader(f"malformed CSV: the header line must be 'x,y,label', got {header!r}")
    rows, problems = [], []
    try:
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 3:
                problems.append(f"line {line}: expected 3 columns, got {len(row)}")
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
