"""The one point-CSV reader behind annotation imports and dataset folders."""

import numpy as np
import pytest

from analysis import pointcsv
from analysis.datasets import read_points_csv
from annotations.formats import FormatError, parse_csv

BAD = "x,y,label\n1,2\nfoo,2,positive\n3,4,negative\n5,nan,positive\n"


def test_rows_and_problems():
    rows, problems = pointcsv.read_rows("\ufeffX, Y ,Label\n1,2, positive\n\n3.5,4,negative\n")
    assert rows == [(2, 1.0, 2.0, "positive"), (4, 3.5, 4.0, "negative")] and problems == []
    rows, problems = pointcsv.read_rows(BAD)
    assert rows == [(4, 3.0, 4.0, "negative")]
    assert problems == ["line 2: expected 3 columns, got 2", "line 3: x and y must be numbers, got 'foo', '2'",
                        "line 5: x and y must be finite numbers"]
    with pytest.raises(pointcsv.BadHeader, match="header line must be 'x,y,label'"):
        pointcsv.read_rows("a,b,c\n1,2,positive\n")


def test_annotations_and_datasets_report_the_same_rows(tmp_path):
    with pytest.raises(FormatError) as caught:
        parse_csv(BAD)
    path = tmp_path / "field.csv"
    path.write_text(BAD)
    xy, labels, problems = read_points_csv(path, 100, 100)
    assert caught.value.problems == [p.removeprefix("field.csv ") for p in problems]
    assert np.array_equal(xy, [[3.0, 4.0]]) and labels.tolist() == [2]
