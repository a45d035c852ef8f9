"""The managers' web pages for annotation projects: the New project form, adding annotators, and
adding fields (sampled from tissue, or drawn on the slide's pseudonymous viewer)."""

import json
import re

import pytest

from annotations import services
from annotations.choices import FieldSource
from annotations.models import AnnotationProject, AnnotationSession, Field
from cases.choices import Role
from tests.annotations import SlideFactory, client_for, project_with_field
from tests.factories import CaseFactory, DepartmentFactory, make_user
from tests.workers.conftest import synthetic_slide, synthetic_slide_file  # noqa: F401  fixtures

pytestmark = pytest.mark.django_db

PROJECTS = "/annotate/projects/"


def page_of(response):
    return response.content.decode()


def draw_config(html):
    return json.loads(html.split('id="draw-config" type="application/json">')[1].split("</script>")[0])


def secrets_of(personas):
    patient, case = personas["case"].patient, personas["case"]
    return [patient.mrn, patient.family_name, case.accession]


def offered(html, user):
    return f'name="annotators" value="{user.pk}"' in html


def checked(html, user):
    return re.search(f'name="annotators" value="{user.pk}" id="id_annotators_\\d+" checked', html) is not None


def project_form(**changes):
    data = {"name": "breast batch", "indication": "breast_ductal", "marker": "PD-L1",
            "label_0": "", "colour_0": "#00aaff", "label_1": "", "colour_1": "#00cc66",
            "label_2": "", "colour_2": "#aa44ff"}
    data.update(changes)
    return data


def other_department(username="annot-b"):
    """An annotator of department B and a slide of a department-B case."""
    dept_b = DepartmentFactory(code="dept-b")
    slide = SlideFactory(case=CaseFactory(patient__department=dept_b))
    return make_user(Role.ANNOTATOR, [dept_b], username=username), slide


def assert_refused(personas, method, url, data=None):
    """Annotators and clinicians 403, a pathologist of another department 404, anonymous to the login page."""
    for who, code in (("annotator", 403), ("clinician", 403), ("outsider", 404)):
        r = getattr(client_for(personas[who]), method)(url, data or {})
        assert r.status_code == code, (who, r.status_code)
    r = getattr(client_for(None), method)(url, data or {})
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]


# ----------------------------------------------------------------------------------------------
# New project
# ----------------------------------------------------------------------------------------------


def test_new_project_form_creates_the_project_with_its_labels_and_annotators(personas):
    client = client_for(personas["pathologist"])
    html = page_of(client.get(PROJECTS))
    assert 'id="project-form"' in html and "csrfmiddlewaretoken" in html
    # offered: the users who may be assigned, of the pathologist's department; not a clinician or an outsider
    assert offered(html, personas["annotator"]) and " annotator</label>" in html
    assert not offered(html, personas["outsider"]) and not offered(html, personas["clinician"])
    r = client.post(PROJECTS, project_form(label_0="Immune", colour_0="#00AAFF", annotators=[personas["annotator"].pk]),
                    follow=True)
    project = AnnotationProject.objects.get(name="breast batch")
    assert r.redirect_chain[-1][0] == f"/annotate/projects/{project.pk}/"
    assert "Project &#x27;breast batch&#x27; created" in page_of(r)
    assert project.created_by == personas["pathologist"] and project.indication == "breast_ductal"
    assert project.labels[2] == {"name": "immune", "title": "immune", "colour": "#00aaff"}
    assert project.label_names == ["positive", "negative", "immune"]
    assert list(project.annotators.all()) == [personas["annotator"]]
    # admins create projects too
    r = client_for(personas["admin"]).post(PROJECTS, project_form(name="admin batch"))
    assert r.status_code == 302 and AnnotationProject.objects.filter(name="admin batch").exists()


def test_new_project_bad_input_lists_every_problem_creates_nothing_and_keeps_what_was_typed(personas):
    client = client_for(personas["pathologist"])
    # the form: no name, an annotator who may not be offered
    r = client.post(PROJECTS, project_form(name="", label_0="immune", annotators=[personas["clinician"].pk]))
    html = page_of(r)
    assert r.status_code == 400
    assert "Project not created." in html and "name: This field is required." in html
    assert "annotators: Select a valid choice." in html
    assert 'value="immune"' in html and '<option value="breast_ductal" selected>' in html
    # the service: a bad colour and a label given twice, both listed
    r = client.post(PROJECTS, project_form(label_0="immune", colour_0="red", label_1="Positive",
                                           annotators=[personas["annotator"].pk]))
    html = page_of(r)
    assert r.status_code == 400
    assert "label &#x27;immune&#x27;: colour must be #rrggbb, got &#x27;red&#x27;" in html
    assert "label &#x27;positive&#x27;: given twice" in html
    assert 'value="breast batch"' in html and 'value="Positive"' in html and 'value="red"' in html
    assert checked(html, personas["annotator"])
    assert not AnnotationProject.objects.exists()


def test_new_project_only_for_pathologists_and_admins(personas):
    for who in ("annotator", "clinician"):
        assert client_for(personas[who]).get(PROJECTS).status_code == 403
        assert client_for(personas[who]).post(PROJECTS, project_form()).status_code == 403
    r = client_for(None).post(PROJECTS, project_form())
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]
    # a pathologist of another department is not offered, and cannot assign, department A's annotator
    outsider = client_for(personas["outsider"])
    assert not offered(page_of(outsider.get(PROJECTS)), personas["annotator"])
    r = outsider.post(PROJECTS, project_form(annotators=[personas["annotator"].pk]))
    assert r.status_code == 400 and "annotators: Select a valid choice." in page_of(r)
    assert not AnnotationProject.objects.exists()


# ----------------------------------------------------------------------------------------------
# Annotators
# ----------------------------------------------------------------------------------------------


def test_add_annotators_gives_each_a_session_on_every_field(personas):
    project, field = project_with_field(personas, annotators=[])
    second = services.do_create_field(project, field.slide, 2000, 2000, 256, 256)
    colleague = make_user(Role.ANNOTATOR, [personas["case"].department], username="colleague")
    client = client_for(personas["pathologist"])
    html = page_of(client.get(f"{PROJECTS}{project.pk}/"))
    assert 'id="annotators-form"' in html and offered(html, colleague)
    r = client.post(f"{PROJECTS}{project.pk}/annotators/", {"annotators": [personas["annotator"].pk, colleague.pk]},
                    follow=True)
    assert "Added annotator, colleague: 4 new session(s)" in page_of(r)
    assert set(project.annotators.all()) == {personas["annotator"], colleague}
    for f in (field, second):
        assert set(f.sessions.values_list("annotator__username", flat=True)) == {"annotator", "colleague"}
    # those already in the project are no longer offered
    assert not offered(page_of(client.get(f"{PROJECTS}{project.pk}/")), colleague)


def test_add_annotators_bad_input_lists_the_problem_and_adds_nobody(personas):
    project, field = project_with_field(personas, annotators=[])
    client = client_for(personas["pathologist"])
    r = client.post(f"{PROJECTS}{project.pk}/annotators/", {})
    assert r.status_code == 400 and "No annotator added. annotators: This field is required." in page_of(r)
    # an annotator who cannot see the field's slide (admins are offered everyone): the service refuses
    stranger, _ = other_department()
    r = client_for(personas["admin"]).post(f"{PROJECTS}{project.pk}/annotators/",
                                           {"annotators": [personas["annotator"].pk, stranger.pk]})
    html = page_of(r)
    assert r.status_code == 400
    assert f"user &#x27;annot-b&#x27; has no access to slide {field.slide.pseudo_id} (field {field.pk})" in html
    assert checked(html, stranger) and checked(html, personas["annotator"])  # the choice is kept
    assert not project.annotators.exists() and not AnnotationSession.objects.exists()


def test_add_annotators_only_for_the_projects_managers(personas):
    project, _ = project_with_field(personas, annotators=[])
    url = f"{PROJECTS}{project.pk}/annotators/"
    assert_refused(personas, "post", url, {"annotators": [personas["annotator"].pk]})
    assert client_for(personas["pathologist"]).get(url).status_code == 405
    assert not project.annotators.exists()


# ----------------------------------------------------------------------------------------------
# Sampled fields
# ----------------------------------------------------------------------------------------------


def sample_form(slide, **changes):
    return {"slide": str(slide.pseudo_id), "n": 2, "size_px": 128, "mpp": 1.0, "seed": 1, **changes}


def test_sample_fields_from_the_project_page(personas, synthetic_slide):  # noqa: F811
    project, _ = project_with_field(personas)
    client = client_for(personas["pathologist"])
    html = page_of(client.get(f"{PROJECTS}{project.pk}/"))
    assert 'id="sample-form"' in html and f'name="slide" value="{synthetic_slide.pseudo_id}"' in html
    for secret in secrets_of(personas) + [synthetic_slide.original_name]:
        assert secret not in html
    r = client.post(f"{PROJECTS}{project.pk}/fields/sample/", sample_form(synthetic_slide), follow=True)
    assert "2 field(s) of 256×256 px sampled on slide" in page_of(r)  # 128 px at 1 µm/px on a 0.5 µm/px slide
    sampled = list(project.fields.filter(source=FieldSource.SAMPLED))
    assert len(sampled) == 2 and all(f.width == f.height == 256 and f.slide == synthetic_slide for f in sampled)
    assert all(f.sessions.filter(annotator=personas["annotator"]).exists() for f in sampled)


def test_sample_fields_bad_input_lists_the_problem_and_creates_nothing(personas, synthetic_slide):  # noqa: F811
    project, _ = project_with_field(personas)
    client, url = client_for(personas["pathologist"]), f"{PROJECTS}{project.pk}/fields/sample/"
    r = client.post(url, sample_form(synthetic_slide, n=150, size_px=256))
    html = page_of(r)
    assert r.status_code == 400, html
    assert "No fields sampled. cannot sample fields: only" in html and "(asked for 150)" in html, html
    assert 'name="n" value="150"' in html  # what was typed stays
    r = client.post(url, sample_form(synthetic_slide, n=1, size_px=4000))
    assert r.status_code == 400 and "does not fit the 1536x1536 slide" in page_of(r)
    r = client.post(url, sample_form(synthetic_slide, n=0, size_px="big"))
    html = page_of(r)
    assert "number of fields: Ensure this value is greater than or equal to 1." in html
    assert "size (px): Enter a whole number." in html
    _, hidden = other_department()
    r = client.post(url, sample_form(hidden))  # a slide of another department: not offered, refused
    assert r.status_code == 400 and "slide: Select a valid choice." in page_of(r)
    assert project.fields.count() == 1


def test_sample_fields_only_for_the_projects_managers(personas, synthetic_slide):  # noqa: F811
    project, _ = project_with_field(personas)
    assert_refused(personas, "post", f"{PROJECTS}{project.pk}/fields/sample/", sample_form(synthetic_slide))
    assert project.fields.count() == 1


# ----------------------------------------------------------------------------------------------
# Drawn fields
# ----------------------------------------------------------------------------------------------


def test_draw_page_shows_the_pseudonymous_slide_and_the_projects_fields(personas):
    project, field = project_with_field(personas)
    slide = field.slide
    client = client_for(personas["pathologist"])
    assert 'id="draw-form"' in page_of(client.get(f"{PROJECTS}{project.pk}/"))
    r = client.get(f"{PROJECTS}{project.pk}/fields/draw/", {"slide": str(slide.pseudo_id)})
    html = page_of(r)
    assert r.status_code == 200 and str(slide.pseudo_id) in html
    config = draw_config(html)
    assert config["dzi"] == f"/viewer/pseudo/{slide.pseudo_id}.dzi"
    assert config["size"] == [8000, 6000] and config["mpp"] == 0.5
    assert config["fields"] == [{"id": field.pk, "region": [1000, 1000, 512, 512]}]
    assert "openseadragon.min.js" in html and "draw_field.js" in html and "csrfmiddlewaretoken" in html
    for secret in secrets_of(personas) + [slide.original_name]:
        assert secret not in html
    # no slide, or one the pathologist may not see: back to the project page, saying why
    for query in ({}, {"slide": str(other_department()[1].pseudo_id)}, {"slide": "not-a-uuid"}):
        r = client.get(f"{PROJECTS}{project.pk}/fields/draw/", query, follow=True)
        assert r.redirect_chain[-1][0] == f"{PROJECTS}{project.pk}/"
        assert "Choose a slide to draw on. slide:" in page_of(r)


def test_drawn_field_is_created_with_sessions_for_the_annotators(personas):
    second = make_user(Role.ANNOTATOR, [personas["case"].department], username="annot2")
    project, field = project_with_field(personas, annotators=[personas["annotator"], second])
    r = client_for(personas["pathologist"]).post(
        f"{PROJECTS}{project.pk}/fields/draw/",
        {"slide": str(field.slide.pseudo_id), "x": 3000, "y": 2000, "width": 1024, "height": 768}, follow=True)
    drawn = project.fields.exclude(pk=field.pk).get()
    assert drawn.region == [3000, 2000, 1024, 768] and drawn.source == FieldSource.DRAWN
    assert drawn.created_by == personas["pathologist"]
    assert set(drawn.sessions.values_list("annotator__username", flat=True)) == {"annotator", "annot2"}
    assert r.redirect_chain[-1][0] == f"{PROJECTS}{project.pk}/"
    assert f"Field {drawn.pk} created on slide {field.slide.pseudo_id}: 3000,2000 1024×768 px." in page_of(r)
    assert "Sessions for: annot2, annotator." in page_of(r)


def test_drawn_field_bad_input_lists_the_problem_keeps_the_region_and_creates_nothing(personas):
    project, field = project_with_field(personas)
    client, url = client_for(personas["pathologist"]), f"{PROJECTS}{project.pk}/fields/draw/"
    pseudo = str(field.slide.pseudo_id)
    r = client.post(url, {"slide": pseudo, "x": 7900, "y": 100, "width": 512, "height": 0})
    html = page_of(r)
    assert r.status_code == 400 and "Field not created. bad region:" in html
    assert "width and height must be positive, got 512x0" in html
    assert "region (7900, 100, 512x0) is not inside the 8000x6000 slide" in html
    assert 'name="x" value="7900"' in html and draw_config(html)["dzi"].endswith(f"{pseudo}.dzi")
    r = client.post(url, {"slide": pseudo, "x": "left", "y": 100, "width": 512})
    html = page_of(r)
    assert r.status_code == 400 and "x: Enter a whole number." in html and "height: This field is required." in html
    stranger, hidden = other_department()
    r = client.post(url, {"slide": str(hidden.pseudo_id), "x": 0, "y": 0, "width": 10, "height": 10}, follow=True)
    assert "slide: Select a valid choice." in page_of(r)
    assert project.fields.count() == 1
    # an annotator of the project who cannot see the slide: refused by the service, rolled back
    other = services.do_create_project(personas["admin"], "mixed", "other", "PD-L1", (), [stranger])
    r = client_for(personas["admin"]).post(f"{PROJECTS}{other.pk}/fields/draw/",
                                           {"slide": pseudo, "x": 0, "y": 0, "width": 100, "height": 100})
    assert r.status_code == 400 and f"user &#x27;annot-b&#x27; has no access to slide {pseudo}" in page_of(r)
    assert not other.fields.exists() and Field.objects.count() == 1


def test_draw_page_only_for_the_projects_managers(personas):
    project, field = project_with_field(personas)
    url = f"{PROJECTS}{project.pk}/fields/draw/"
    assert_refused(personas, "get", url, {"slide": str(field.slide.pseudo_id)})
    assert_refused(personas, "post", url, {"slide": str(field.slide.pseudo_id), "x": 0, "y": 0, "width": 64,
                                           "height": 64})
    assert project.fields.count() == 1


# ----------------------------------------------------------------------------------------------
# Slides by thumbnail and pseudonymous description (issue 18 item 10)
# ----------------------------------------------------------------------------------------------


def _option_text(html, form_id, pseudo_id):
    """The text of the slide card of `pseudo_id` in the form `form_id`, and its thumbnail's URL."""
    form = html.split(f'id="{form_id}"')[1].split("</form>")[0]
    card = re.search(r'<label class="slide-option"[^>]*>(?:(?!</label>).)*?value="%s"(?:(?!</label>).)*</label>'
                     % pseudo_id, form, re.S).group(0)
    return re.sub(r"<[^>]+>", " ", card).split(), re.search(r'<img src="([^"]+)"', card).group(1)


def _slide_of_case(personas, indication, clone, file_name):
    case = personas["case"]
    case.indication, case.assay_clone = indication, clone
    case.save()
    return case, SlideFactory(case=case, original_name=file_name)


def test_project_page_offers_slides_by_thumbnail_and_pseudonymous_description(personas):
    case, slide = _slide_of_case(personas, "lung_squamous", "SP263", "SMITH-JOHN-MRN123.svs")
    project, _ = project_with_field(personas, slide=slide)
    services.do_create_field(project, slide, 3000, 3000, 256, 256, user=personas["pathologist"])
    other = SlideFactory(case=case)
    html = page_of(client_for(personas["pathologist"]).get(f"{PROJECTS}{project.pk}/"))
    code = str(slide.pseudo_id)[:8]
    for form_id in ("sample-form", "draw-form"):
        words, thumb = _option_text(html, form_id, slide.pseudo_id)
        assert " ".join(words) == (f"Slide {code} · Lung squamous cell carcinoma · PD-L1 SP263 · 2 fields · "
                                   f"{slide.width}×{slide.height} px · 0.5 µm/px")
        assert thumb == f"/annotate/{slide.pseudo_id}/thumbnail.png"
        assert "0 fields" in " ".join(_option_text(html, form_id, other.pseudo_id)[0])
    # the fields table describes each field's slide the same way, with its thumbnail
    rows = html.split('class="table annotation-fields"')[1].split("</table>")[0]
    assert rows.count(f"Slide {code} · Lung squamous cell carcinoma · PD-L1 SP263 · 2 fields") == 2
    assert rows.count(f'src="/annotate/{slide.pseudo_id}/thumbnail.png"') == 2
    for secret in secrets_of(personas) + ["SMITH-JOHN-MRN123.svs"]:
        assert secret not in html
    # one id per element: the two slide pickers do not share ids
    ids = re.findall(r'id="([^"]+)"', html)
    assert len(ids) == len(set(ids))


def test_annotator_pages_describe_slides_pseudonymously(personas):
    case, slide = _slide_of_case(personas, "lung_nonsquamous", "22C3", "DOE-JANE.svs")
    _, field = project_with_field(personas, slide=slide)
    client = client_for(personas["annotator"])
    described = f"Slide {str(slide.pseudo_id)[:8]} · {case.get_indication_display()} · PD-L1 22C3"
    listing = page_of(client.get("/annotate/sessions/"))
    assert described in listing and f'src="/annotate/{slide.pseudo_id}/thumbnail.png"' in listing
    session = page_of(client.get(f"/annotate/sessions/{field.sessions.get().pk}/"))
    assert f"{described} · 1 field" in session
    slides = page_of(client.get("/annotate/"))
    assert described in slides
    for html in (listing, session, slides):
        for secret in secrets_of(personas) + ["DOE-JANE.svs"]:
            assert secret not in html
