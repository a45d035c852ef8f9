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


def test_the_platforms_own_exports_read_back_and_model_output_is_never_an_annotation(tmp_path):
    """The viewer's export (x,y,label,source,in_regions) and detect_nuclei's (x,y,label,score) read as point
    files; an annotation import refuses the detector's unreviewed points, a dataset folder keeps them."""
    viewer_export = "x,y,label,source,in_regions\n1,2,positive,model,yes\n3,4,negative,relabelled,no\n5,6,positive,added,yes\n"
    rows, problems = pointcsv.read_rows(viewer_export)
    assert [r[1:] for r in rows] == [(1.0, 2.0, "positive"), (3.0, 4.0, "negative"), (5.0, 6.0, "positive")]
    assert problems == []
    assert pointcsv.read_rows("x,y,label,score\n1,2,positive,0.9\n")[0] == [(2, 1.0, 2.0, "positive")]
    with pytest.raises(FormatError) as refused:
        parse_csv(viewer_export)
    assert refused.value.problems == ["line 2: the detector's unreviewed output (source=model), not a person's "
                                      "label: import the reviewed points only"]
    assert parse_csv(viewer_export.replace("model", "added")) == [(1.0, 2.0, "positive"), (3.0, 4.0, "negative"),
                                                                 (5.0, 6.0, "positive")]
    for header in ("x,y,label,colour", "x,y,label,score,score", "label,x,y"):
        with pytest.raises(pointcsv.BadHeader):
            pointcsv.read_rows(header + "\n")


def test_a_geojson_import_refuses_the_detectors_unreviewed_points():
    from analysis import geojson
    from annotations.formats import parse_geojson

    doc = geojson.feature_collection([
        geojson.class_feature("Positive", [220, 30, 40], [[1, 2]], source="model"),
        geojson.class_feature("Negative", [245, 200, 0], [[3, 4]], source="relabelled")])
    with pytest.raises(FormatError) as refused:
        parse_geojson(doc)
    assert len(refused.value.problems) == 1 and "feature 0" in refused.value.problems[0]
    assert geojson.read_points(doc) == [(1.0, 2.0, "Positive"), (3.0, 4.0, "Negative")]



def test_a_detectors_own_output_is_never_imported_as_annotations():
    """detect_nuclei writes x,y,label,score (CSV) and QuPath detections (GeoJSON): a detector's points."""
    from analysis.management.commands.detect_nuclei import to_geojson
    from annotations.formats import parse_geojson

    with pytest.raises(FormatError, match="detector's output"):
        parse_csv("x,y,label,score\n1,2,positive,0.9\n")
    detections = to_geojson(np.array([[1.0, 2.0]]), np.array([1]), np.array([0.9]))
    with pytest.raises(FormatError) as refused:
        parse_geojson(detections)
    assert "detector's output" in refused.value.problems[0]
