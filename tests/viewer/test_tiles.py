"""DeepZoom descriptor and tiles: every readable format, permissions, ETag, the slide cache."""

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image

from cases.services import IngestSource, do_ingest_slide
from tests.conftest import shared_slide
from tests.viewer import client_for
from tests.workers.conftest import synthetic_slide, synthetic_slide_file  # noqa: F401  fixtures
from viewer import tiles

pytestmark = pytest.mark.django_db

SHARED = ["CMU-1-Small-Region.svs", "boxes.tiff", "test3-DAPI-2-387.ndpi", "sm_image.dcm"]


@pytest.fixture(autouse=True)
def fresh_caches():
    tiles.slide_cache.clear()
    tiles.tile_cache.clear()
    yield
    tiles.slide_cache.clear()
    tiles.tile_cache.clear()


def ingest(path, case=None, **kwargs):
    return do_ingest_slide([IngestSource(name=path.name, path=path)], case=case, **kwargs).slide


def dzi_of(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/xml"
    root = ET.fromstring(response.content)
    size = root.find("{http://schemas.microsoft.com/deepzoom/2008}Size")
    assert root.get("TileSize") == "254" and root.get("Overlap") == "1" and root.get("Format") == "jpeg"
    return int(size.get("Width")), int(size.get("Height"))


def decode(response):
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "image/jpeg"
    return Image.open(io.BytesIO(response.content))


def deepest_level(width, height):
    return int(np.ceil(np.log2(max(width, height))))


@pytest.mark.parametrize("name", SHARED)
def test_every_shared_format_gives_a_dzi_and_tiles(personas, name):
    case = personas["case"]
    if name == "sm_image.dcm":  # the file names its (fictitious) patient and accession: filed only in their case
        case.patient.mrn, case.accession = "AA01", "S19-1_A_1_1"
        case.patient.save()
        case.save()
    slide = ingest(shared_slide(name), case=case)
    client = client_for(personas["pathologist"])
    width, height = dzi_of(client, reverse("viewer:slide-dzi", args=[slide.pk]))
    # the DZI is the whole level-0 plane: overlays are in level-0 pixels
    assert (width, height) == (slide.width, slide.height)
    top = deepest_level(width, height)
    first = decode(client.get(reverse("viewer:slide-tile", args=[slide.pk, top, 0, 0])))
    assert first.size == (min(255, width), min(255, height))
    assert decode(client.get(reverse("viewer:slide-tile", args=[slide.pk, 0, 0, 0]))).size == (1, 1)
    assert client.get(reverse("viewer:slide-tile", args=[slide.pk, top + 1, 0, 0])).status_code == 404
    assert client.get(reverse("viewer:slide-tile", args=[slide.pk, top, 999, 0])).status_code == 404


def test_synthetic_slide_tiles_show_its_pixels(personas, synthetic_slide):  # noqa: F811
    client = client_for(personas["pathologist"])
    assert dzi_of(client, reverse("viewer:slide-dzi", args=[synthetic_slide.pk])) == (1536, 1536)
    tile = decode(client.get(reverse("viewer:slide-tile", args=[synthetic_slide.pk, 11, 2, 2])))
    assert tile.size == (256, 256)  # inner tile: 254 + overlap on both sides
    assert np.asarray(tile).std() > 5  # tissue, not a blank
    info = client.get(reverse("viewer:slide-info", args=[synthetic_slide.pk])).json()
    assert info["width"] == 1536 and info["mpp_x"] == pytest.approx(0.5)
    assert info["dzi_url"] == reverse("viewer:slide-dzi", args=[synthetic_slide.pk])
    assert info["max_zoom_ratio"] == 4.0 and set(info) >= {"height", "mpp_y", "objective_power"}


def test_ome_tiff_is_served_through_its_own_reader(personas, tmp_path):
    import tifffile

    path = tmp_path / "field.ome.tiff"
    yy, xx = np.mgrid[0:600, 0:700]
    image = np.stack([xx * 255 // 700, yy * 255 // 600, (xx + yy) * 255 // 1300], axis=2).astype(np.uint8)
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(image, tile=(256, 256), photometric="rgb", subifds=1,
                  metadata={"axes": "YXS", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25})
        tif.write(image[::2, ::2], tile=(256, 256), photometric="rgb", subfiletype=1)
    slide = ingest(path, case=personas["case"])
    assert slide.format == "ome-tiff"
    client = client_for(personas["pathologist"])
    assert dzi_of(client, reverse("viewer:slide-dzi", args=[slide.pk])) == (700, 600)
    tile = np.asarray(decode(client.get(reverse("viewer:slide-tile", args=[slide.pk, 10, 0, 0]))))
    assert tile.shape == (255, 255, 3)
    assert np.abs(tile.astype(int) - image[:255, :255].astype(int)).mean() < 4  # JPEG of the same pixels


def test_unreadable_slide_answers_404_with_a_clear_message(personas, synthetic_slide, media_root):  # noqa: F811
    (media_root / synthetic_slide.file.name).write_bytes(b"not a slide any more")
    response = client_for(personas["pathologist"]).get(reverse("viewer:slide-dzi", args=[synthetic_slide.pk]))
    assert response.status_code == 404


def test_unreadable_slide_message(tmp_path):
    path = tmp_path / "broken.svs"
    path.write_bytes(b"not a slide")
    with pytest.raises(tiles.TileError, match="cannot be displayed"):
        tiles.dzi_xml(str(path))


def test_permissions_matrix_for_tiles(personas, synthetic_slide):  # noqa: F811
    by_id = [reverse("viewer:slide-dzi", args=[synthetic_slide.pk]),
             reverse("viewer:slide-tile", args=[synthetic_slide.pk, 9, 0, 0]),
             reverse("viewer:slide-info", args=[synthetic_slide.pk])]
    pseudo = [reverse("viewer:pseudo-dzi", args=[synthetic_slide.pseudo_id]),
              reverse("viewer:pseudo-tile", args=[synthetic_slide.pseudo_id, 9, 0, 0]),
              reverse("viewer:pseudo-info", args=[synthetic_slide.pseudo_id])]
    expected = {
        "pathologist": (200, 200), "admin": (200, 200), "outsider": (404, 404),
        "annotator": (403, 200), "clinician": (403, 403), "norole": (403, 403),
    }
    for persona, (identified, pseudonymous) in expected.items():
        client = client_for(personas[persona])
        assert [client.get(u).status_code for u in by_id] == [identified] * 3, persona
        assert [client.get(u).status_code for u in pseudo] == [pseudonymous] * 3, persona
    anonymous = client_for(None)
    for url in by_id + pseudo:
        response = anonymous.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    info = client_for(personas["annotator"]).get(pseudo[2]).json()
    assert info["dzi_url"] == f"/viewer/pseudo/{synthetic_slide.pseudo_id}.dzi"


def test_etag_and_cache_headers_and_304(personas, synthetic_slide):  # noqa: F811
    client = client_for(personas["pathologist"])
    url = reverse("viewer:slide-tile", args=[synthetic_slide.pk, 10, 1, 1])
    first = client.get(url)
    etag = first["ETag"]
    assert etag.endswith('-10-1-1"')
    # Revalidated before every reuse: no tile is shown from the browser cache after access ends.
    assert first["Cache-Control"] == "private, no-cache"
    again = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag
    assert client.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200
    other = reverse("viewer:slide-tile", args=[synthetic_slide.pk, 10, 0, 1])
    assert client.get(other, HTTP_IF_NONE_MATCH=etag).status_code == 200
    # no 304 (nor any hint) for a user who may not see the slide
    assert client_for(personas["outsider"]).get(url, HTTP_IF_NONE_MATCH=etag).status_code == 404


def test_pseudonymous_tile_etag_does_not_reveal_the_file_hash(personas, synthetic_slide):  # noqa: F811
    """The sha256 links a file to its identified record: annotators see an opaque keyed hash only."""
    import re

    client = client_for(personas["annotator"])
    url = reverse("viewer:pseudo-tile", args=[synthetic_slide.pseudo_id, 10, 1, 1])
    etag = client.get(url)["ETag"]
    digest = synthetic_slide.sha256.lower()
    assert all(run not in digest for run in re.findall(r"[0-9a-f]{8,}", etag.lower())), etag
    assert client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304  # still a working validator


def test_slide_cache_is_a_bounded_lru(settings, tmp_path):
    settings.PDL1_VIEWER_SLIDE_CACHE_SIZE = 2
    paths = []
    for i in range(3):
        path = tmp_path / f"field-{i}.png"
        Image.new("RGB", (300 + i, 200), (i * 40, 0, 0)).save(path)
        paths.append(str(path))
    opened = []
    cache = tiles.SlideCache(opener=lambda p: opened.append(p) or tiles.open_generator(p))
    first = cache.get(paths[0])
    cache.get(paths[1])
    assert cache.get(paths[0]) is first  # hit: moves to the front
    cache.get(paths[2])  # evicts paths[1], the least recently used
    assert len(cache) == 2 and [k[0] for k in cache.keys()] == [paths[0], paths[2]]
    cache.get(paths[1])
    assert opened == [paths[0], paths[1], paths[2], paths[1]]
    # a replaced file (new mtime) is reopened and its stale entry dropped
    import os

    os.utime(paths[1], ns=(1, 1))
    cache.get(paths[1])
    assert [k[0] for k in cache.keys()].count(paths[1]) == 1 and len(opened) == 5


def test_slide_cache_is_thread_safe(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "field.png"
    Image.new("RGB", (600, 500), (10, 120, 30)).save(path)
    opened = []
    cache = tiles.SlideCache(opener=lambda p: opened.append(p) or tiles.open_generator(p))
    tiles.slide_cache, saved = cache, tiles.slide_cache
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: tiles.tile_jpeg(str(path), 10, i % 3, i % 2), range(48)))
    finally:
        tiles.slide_cache = saved
    assert len(opened) == 1 and all(r[:2] == b"\xff\xd8" for r in results)


def test_a_slide_with_scanner_bounds_is_shown_whole_so_overlays_stay_in_level_0(monkeypatch):
    """Leica, Ventana, Philips and Zeiss files carry bounds; the DeepZoom image must still start at
    level-0 (0, 0), where detections and regions are placed."""
    import openslide

    from slideio import slidefile
    from viewer.tiles import open_generator

    class Bounded(openslide.OpenSlide):
        @property
        def properties(self):
            return {**super().properties, openslide.PROPERTY_NAME_BOUNDS_X: "1000",
                    openslide.PROPERTY_NAME_BOUNDS_Y: "1500", openslide.PROPERTY_NAME_BOUNDS_WIDTH: "1000",
                    openslide.PROPERTY_NAME_BOUNDS_HEIGHT: "1000"}

    monkeypatch.setattr(slidefile, "open_slide", lambda path: Bounded(path))
    opened = open_generator(str(shared_slide("CMU-1-Small-Region.svs")))
    try:
        assert opened.generator.level_dimensions[-1] == opened.slide.dimensions == (2220, 2967)
    finally:
        opened.slide.close()


def test_a_tile_that_cannot_be_read_is_a_clear_404_and_does_not_break_the_slide(personas, synthetic_slide,
                                                                               monkeypatch):  # noqa: F811
    """A damaged tile raised out of the view (500), and OpenSlide's handle, cached, stayed in its error for
    every other tile and user. Now: a 404 saying so, and the handle is opened again for the next tile."""
    import openslide

    client = client_for(personas["pathologist"])
    client.raise_request_exception = False
    url = reverse("viewer:slide-tile", args=[synthetic_slide.pk, 11, 0, 0])
    opened = tiles.slide_cache.get(synthetic_slide.path)

    def damaged(level, address):
        raise openslide.OpenSlideError("TIFFReadEncodedTile: ZIPDecode: decoding error")

    monkeypatch.setattr(opened.generator, "get_tile", damaged)
    response = client.get(url)
    assert response.status_code == 404  # not a 500
    assert not tiles.slide_cache.keys()  # the handle met an error: forgotten
    assert decode(client.get(reverse("viewer:slide-tile", args=[synthetic_slide.pk, 11, 1, 1]))).size == (256, 256)
