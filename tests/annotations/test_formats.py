"""QuPath GeoJSON and CSV x,y,label: round trips, validation, import over the API (all or nothing)."""

import json

import pytest

from annotations import formats, services
from annotations.models import AnnotationRevision
from tests.annotations import client_for, project_with_field, session_of

LABELS = [{"name": "positive", "colour": "#ff0000"}, {"name": "negative", "colour": "#ffff00"}]
POINTS = [[10.0, 20.0, "positive"], [30.5, 40.0, "negative"], [11.0, 21.0, "positive"]]


def test_geojson_round_trip_is_qupath_shaped():
    doc = formats.to_geojson(POINTS, LABELS)
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 2
    pos = doc["features"][0]
    assert pos["geometry"] == {"type": "MultiPoint", "coordinates": [[10.0, 20.0], [11.0, 21.0]]}
    assert pos["properties"]["classification"] == {"name": "Positive", "color": [220, 30, 40]}  # analysis.labels
    assert doc["features"][1]["properties"]["classification"]["color"] == [245, 200, 0]
    read = [(x, y, name.lower()) for x, y, name in formats.parse_geojson(json.dumps(doc))]
    assert sorted(read) == sorted(tuple(p) for p in POINTS)


def test_geojson_accepts_point_features_and_a_bare_feature():
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 6]},
               "properties": {"classification": {"name": "Negative", "color": [0, 0, 255]}}}
    assert formats.parse_geojson(json.dumps(feature)) == [(5.0, 6.0, "Negative")]
    assert formats.parse_geojson(json.dumps([feature, feature])) == [(5.0, 6.0, "Negative")] * 2


def test_geojson_errors_list_every_offending_feature():
    bad = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
         "properties": {"classification": {"name": "positive"}}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}, "properties": {}},
        {"type": "Feature", "geometry": {"type": "MultiPoint", "coordinates": [[1, 2], ["a", 3]]},
         "properties": {"classification": {"name": "positive"}}},
        {"type": "Feature", "geometry": None},
        "nonsense",
    ]}
    with pytest.raises(formats.FormatError) as err:
        formats.parse_geojson(json.dumps(bad))
    problems = err.value.problems
    assert len(problems) == 5
    assert "feature 0: geometry type 'Polygon' is not a Point or MultiPoint" in problems[0]
    assert "feature 1: no classification" in problems[1]
    assert "feature 2 point 1" in problems[2]
    assert "feature 3: no geometry" in problems[3] and "feature 4: not a GeoJSON Feature" in problems[4]
    with pytest.raises(formats.FormatError, match="not valid JSON"):
        formats.parse_geojson("{nope")
    with pytest.raises(formats.FormatError, match="expected a FeatureCollection"):
        formats.parse_geojson('{"type": "Point", "coordinates": [1, 2]}')


def test_csv_round_trip_and_errors():
    text = formats.to_csv(POINTS)
    assert text.splitlines()[0] == "x,y,label" and text.splitlines()[2] == "30.5,40,negative"
    assert formats.parse_csv(text) == [tuple(p) for p in POINTS]
    assert formats.parse_csv(b"\xef\xbb\xbfx,y,label\n1,2,positive\n") == [(1.0, 2.0, "positive")]
    with pytest.raises(formats.FormatError, match="header line must be 'x,y,label'"):
        formats.parse_csv("a,b,c\n1,2,positive\n")
    with pytest.raises(formats.FormatError) as err:
        formats.parse_csv("x,y,label\n1,2\nfoo,2,positive\n3,4,negative\n5,nan,positive\n")
    assert [p.split(":")[0] for p in err.value.problems] == ["line 2", "line 3", "line 5"]
    with pytest.raises(formats.FormatError, match="not UTF-8"):
        formats.parse_csv(b"x,y,label\n\xff\xfe")


@pytest.mark.django_db
def test_import_rejects_points_outside_field_or_unknown_labels_and_saves_nothing(personas):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    text = "x,y,label\n1100,1100,positive\n5,5,positive\n1200,1200,macrophage\n"
    with pytest.raises(services.AnnotationError) as err:
        services.do_import_points(session, personas["annotator"], 0, text, "csv")
    assert "nothing imported" in str(err.value) and len(err.value.problems) == 2
    session.refresh_from_db()
    assert session.version == 0 and not AnnotationRevision.objects.exists()


@pytest.mark.django_db
def test_import_and_export_over_the_api(personas):
    _, field = project_with_field(personas, extra_labels=["immune"])
    session = session_of(field, personas["annotator"])
    client = client_for(personas["annotator"])
    doc = formats.to_geojson([[1100, 1100, "positive"], [1101, 1300, "immune"]], field.project.labels)
    url = f"/api/annotation/sessions/{session.pk}"
    r = client.post(f"{url}/import/", {"fmt": "geojson", "version": 0, "content": json.dumps(doc)},
                    content_type="application/json")
    assert r.status_code == 200, r.content
    assert r.json() == {"version": 1, "status": "in_progress", "counts": {"positive": 1, "immune": 1}}
    r = client.get(f"{url}/export/?fmt=geojson")
    assert r.status_code == 200 and "geojson" in r["Content-Disposition"]
    names = [f["properties"]["classification"]["name"] for f in r.json()["features"]]
    assert names == ["Positive", "immune"]  # QuPath's own class for the tumour labels, as the viewer's export
    r = client.get(f"{url}/export/?fmt=csv")
    assert r["Content-Type"].startswith("text/csv")
    assert r.content.decode() == "x,y,label\n1100,1100,positive\n1101,1300,immune\n"
    # a CSV file upload replaces the set; a stale version is a conflict; a bad file lists offenders
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("pts.csv", b"x,y,label\n1200,1200,negative\n", content_type="text/csv")
    r = client.post(f"{url}/import/", {"version": 1, "file": upload})
    assert r.status_code == 200 and r.json()["counts"] == {"negative": 1}
    r = client.post(f"{url}/import/", {"fmt": "csv", "version": 1, "content": "x,y,label\n1200,1200,negative\n"},
                    content_type="application/json")
    assert r.status_code == 409
    r = client.post(f"{url}/import/", {"fmt": "geojson", "version": 2, "content": "{oops"},
                    content_type="application/json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = client.post(f"{url}/import/", {"fmt": "xml", "version": 2, "content": "<a/>"}, content_type="application/json")
    assert r.status_code == 400
    assert client.get(f"{url}/export/?fmt=xml").status_code == 400
    session.refresh_from_db()
    assert session.version == 2 and session.points == [[1200.0, 1200.0, "negative"]]
    # someone else's session: not found
    assert client_for(personas["outsider"]).get(f"{url}/export/").status_code == 404


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.django_db
def test_a_geojson_download_from_the_page_is_geojson_not_the_api_page(personas):
    """The page's download link sends a browser's Accept (HTML first); QuPath needs the GeoJSON file."""
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    services.do_save_points(session, personas["annotator"], 0, [[1100, 1100, "positive"]])
    r = client_for(personas["annotator"]).get(f"/api/annotation/sessions/{session.pk}/export/?fmt=geojson",
                                              HTTP_ACCEPT=BROWSER_ACCEPT)
    assert r.status_code == 200 and r["Content-Type"] == "application/geo+json"
    assert json.loads(r.content)["features"][0]["geometry"]["coordinates"] == [[1100, 1100]]  # a MultiPoint


@pytest.mark.django_db
@pytest.mark.parametrize("version", [True, 0.9, "0.0", "1e0", "", None, [0], "²", "--0", "٣"])
def test_an_import_version_must_be_a_whole_number(personas, version):
    _, field = project_with_field(personas)
    session = session_of(field, personas["annotator"])
    r = client_for(personas["annotator"]).post(
        f"/api/annotation/sessions/{session.pk}/import/",
        {"fmt": "csv", "version": version, "content": "x,y,label\n1100,1100,positive\n"}, content_type="application/json")
    assert r.status_code == 400 and "version" in r.json()
    session.refresh_from_db()
    assert session.version == 0



@pytest.mark.django_db
def test_the_tumour_classes_export_as_the_viewers_do_and_read_back(personas):
    """One vocabulary: an annotation export names the two classes as the viewer's and detect_nuclei's
    exports do (QuPath's Positive / Negative, the platform's colours), and imports them back."""
    from analysis.geojson import qupath_classes

    doc = formats.to_geojson([[1100, 1100, "positive"], [1200, 1200, "negative"], [1300, 1300, "immune"]],
                             [*LABELS, {"name": "immune", "colour": "#00aaff"}])
    shown = {f["properties"]["classification"]["name"]: f["properties"]["classification"]["color"]
             for f in doc["features"]}
    assert shown == {qupath_classes()["positive"][0]: qupath_classes()["positive"][1],
                     qupath_classes()["negative"][0]: qupath_classes()["negative"][1], "immune": [0, 170, 255]}
    _, field = project_with_field(personas, extra_labels=["immune"])
    session = session_of(field, personas["annotator"])
    services.do_import_points(session, personas["annotator"], 0, json.dumps(doc), "geojson")
    session.refresh_from_db()
    assert sorted(p[2] for p in session.points) == ["immune", "negative", "positive"]


@pytest.mark.django_db
@pytest.mark.parametrize("colour", ["#ff0000", "#dc1e28", "#e01020", "#ffff00", "#f5c800"])
def test_an_extra_label_cannot_look_like_a_tumour_class(colour):
    with pytest.raises(services.AnnotationError) as refused:
        services.check_labels([{"name": "immune", "colour": colour}])
    assert "too close to the positive or negative colour" in refused.value.problems[0]
