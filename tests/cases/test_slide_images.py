"""Label and macro images (issue 18 item 9): pathologists and admins see them, annotators never.

A real Aperio SVS (CMU-1-Small-Region.svs holds a label and a macro image) and files without them
(small.svs: a thumbnail only; boxes.tiff: none).
"""

import io

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from cases import services
from cases.services import IngestSource, do_ingest_slide
from slideio.slidefile import SlideError, read_associated_image
from tests.conftest import shared_slide


def _ingest(case, name):
    return do_ingest_slide([IngestSource(name=name, path=shared_slide(name))], case=case).slide


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def _url(slide, name):
    return reverse("cases:slide-associated-image", args=[slide.pk, name])


def test_reader_returns_the_files_label_and_macro_as_png():
    path = shared_slide("CMU-1-Small-Region.svs")
    label = Image.open(io.BytesIO(read_associated_image(path, "label")))
    macro = Image.open(io.BytesIO(read_associated_image(path, "macro")))
    assert (label.format, label.size) == ("PNG", (387, 463))
    assert (macro.format, macro.size) == ("PNG", (1280, 431))
    with pytest.raises(KeyError):
        read_associated_image(shared_slide("small.svs"), "label")  # a thumbnail only
    with pytest.raises(KeyError):
        read_associated_image(path, "thumbnail")  # not one of the images offered


def test_reader_refuses_an_image_declaring_too_many_pixels(monkeypatch):
    import slideio.slidefile as slidefile

    monkeypatch.setattr(slidefile, "MAX_ASSOCIATED_PIXELS", 387 * 463 - 1)
    with pytest.raises(SlideError, match="387×463"):
        read_associated_image(shared_slide("CMU-1-Small-Region.svs"), "label")


@pytest.mark.django_db
@pytest.mark.parametrize("persona, expected", [
    ("pathologist", 200), ("admin", 200), ("annotator", 403), ("clinician", 403), ("norole", 403), ("outsider", 404),
])
def test_who_sees_the_label(personas, persona, expected):
    slide = _ingest(personas["case"], "CMU-1-Small-Region.svs")
    for name in ("label", "macro"):
        response = _client(personas[persona]).get(_url(slide, name))
        assert response.status_code == expected, (persona, name)
        if expected == 200:
            assert response["Content-Type"] == "image/png"
            assert response["Cache-Control"] == "private, no-store"
            image = Image.open(io.BytesIO(response.content))
            assert image.size == {"label": (387, 463), "macro": (1280, 431)}[name]


@pytest.mark.django_db
def test_annotator_is_refused_with_a_message_even_for_a_slide_of_their_department(personas):
    slide = _ingest(personas["case"], "CMU-1-Small-Region.svs")
    response = _client(personas["annotator"]).get(_url(slide, "label"))
    assert response.status_code == 403
    assert b"label" in response.content and b"PNG" not in response.content[:8]


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(personas):
    slide = _ingest(personas["case"], "CMU-1-Small-Region.svs")
    response = Client().get(_url(slide, "label"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("file_name", ["small.svs", "boxes.tiff"])
def test_slide_without_label_answers_404_with_a_clear_message(personas, file_name):
    slide = _ingest(personas["case"], file_name)
    response = _client(personas["pathologist"]).get(_url(slide, "label"))
    assert response.status_code == 404
    assert b"has no label image" in response.content
    with pytest.raises(services.AssociatedImageMissing, match="has no macro image"):
        services.do_read_associated_image(slide, "macro")


@pytest.mark.django_db
def test_unknown_image_name_is_404(personas):
    slide = _ingest(personas["case"], "CMU-1-Small-Region.svs")
    response = _client(personas["pathologist"]).get(_url(slide, "thumbnail-x"))
    assert response.status_code == 404
    assert services.associated_images_of(slide) == ["label", "macro"]  # the thumbnail is not offered


@pytest.mark.django_db
def test_label_is_audited(personas):
    from auditlog.models import LogEntry

    slide = _ingest(personas["case"], "CMU-1-Small-Region.svs")
    accesses = LogEntry.objects.filter(action=LogEntry.Action.ACCESS, object_pk=str(slide.pk))
    before = accesses.count()
    assert _client(personas["pathologist"]).get(_url(slide, "label")).status_code == 200
    assert accesses.count() == before + 1
    assert _client(personas["annotator"]).get(_url(slide, "label")).status_code == 403
    assert accesses.count() == before + 1  # a refusal reads nothing


@pytest.mark.django_db
def test_slide_page_and_viewer_show_them_to_the_pathologist(personas):
    slide = _ingest(personas["case"], "CMU-1-Small-Region.svs")
    client = _client(personas["pathologist"])
    page = client.get(slide.get_absolute_url()).content.decode()
    viewer = client.get(reverse("viewer:slide-viewer", args=[slide.pk])).content.decode()
    for html in (page, viewer):
        assert f'src="{_url(slide, "label")}"' in html
        assert f'src="{_url(slide, "macro")}"' in html


@pytest.mark.django_db
def test_slide_page_says_when_a_file_has_none(personas):
    slide = _ingest(personas["case"], "boxes.tiff")
    client = _client(personas["pathologist"])
    page = client.get(slide.get_absolute_url()).content.decode()
    assert "stores no label or macro image" in page and 'id="slide-label"' not in page
    viewer = client.get(reverse("viewer:slide-viewer", args=[slide.pk])).content.decode()
    assert 'id="slide-images"' not in viewer


@pytest.mark.django_db
def test_annotator_pages_never_link_the_label(personas):
    slide = _ingest(personas["case"], "CMU-1-Small-Region.svs")
    client = _client(personas["annotator"])
    html = client.get(reverse("cases:annotator-slides")).content.decode()
    assert str(slide.pseudo_id) in html
    assert "/images/label.png" not in html and "/images/macro.png" not in html
