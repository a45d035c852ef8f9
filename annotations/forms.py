"""HTML forms of the reviewer's pages: they only parse the request; annotations.services validates
the substance (labels, annotators' slide access, regions, sampling) and creates.

Slides and users are offered by pseudonymous id and username only, never patient data.
"""

from django import forms
from django.db.models import Count, Q

from annotations import services
from cases import access
from cases.services import pseudonymous_description
from cases.choices import Indication, Marker

EXTRA_LABEL_ROWS = 3
EXTRA_LABEL_COLOURS = ("#00aaff", "#00cc66", "#aa44ff")


class UsernameChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return obj.username


class SlidePicker(forms.RadioSelect):
    """Slides as radio cards: thumbnail (pseudonymous URL) and pseudonymous description."""

    template_name = "annotations/widgets/slide_picker.html"
    option_template_name = "annotations/widgets/slide_option.html"


class PseudoSlideField(forms.ModelChoiceField):
    """A slide the user may see pseudonymously, chosen by thumbnail and description, posted by its pseudo
    id; with a project, only slides stained for the project's marker (services.check_field_slide refuses the
    others), each saying how many of the project's fields it has."""

    def __init__(self, user, project=None, **kwargs):
        slides = access.pseudonymous_slides(user).select_related("case")
        if project is not None:
            slides = slides.filter(marker=project.marker).annotate(project_fields=Count(
                "annotation_fields", filter=Q(annotation_fields__project=project)))
        super().__init__(queryset=slides, to_field_name="pseudo_id", widget=SlidePicker, **kwargs)

    def label_from_instance(self, slide):
        mpp = f"{slide.mpp_x:g} µm/px" if slide.mpp_x else "no µm/px"
        described = pseudonymous_description(slide, getattr(slide, "project_fields", None))
        return f"{described} · {slide.width}×{slide.height} px · {mpp}"


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=200)
    indication = forms.ChoiceField(choices=Indication.choices, initial=Indication.OTHER)
    marker = forms.ChoiceField(choices=Marker.choices, initial=Marker.PDL1)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["annotators"] = UsernameChoiceField(
            queryset=services.assignable_annotators(user), required=False, widget=forms.CheckboxSelectMultiple)
        # Extra labels as fixed rows (name + colour): blank names are ignored; check_labels judges the rest.
        for n in range(EXTRA_LABEL_ROWS):
            self.fields[f"label_{n}"] = forms.CharField(required=False, max_length=40, label=f"extra label {n + 1}")
            self.fields[f"colour_{n}"] = forms.CharField(
                required=False, max_length=20, initial=EXTRA_LABEL_COLOURS[n], label=f"colour of extra label {n + 1}",
                widget=forms.TextInput(attrs={"type": "color"}))

    def label_rows(self):
        return [(self[f"label_{n}"], self[f"colour_{n}"]) for n in range(EXTRA_LABEL_ROWS)]

    def extra_labels(self) -> list[dict]:
        data = self.cleaned_data
        return [{"name": data[f"label_{n}"], "colour": data[f"colour_{n}"] or EXTRA_LABEL_COLOURS[n]}
                for n in range(EXTRA_LABEL_ROWS) if data[f"label_{n}"].strip()]


class AnnotatorsForm(forms.Form):
    def __init__(self, *args, user, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["annotators"] = UsernameChoiceField(
            queryset=services.assignable_annotators(user).exclude(pk__in=project.annotators.values("pk")),
            widget=forms.CheckboxSelectMultiple)


class SlideForm(forms.Form):
    """The slide of the draw page (a GET parameter)."""

    def __init__(self, *args, user, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["slide"] = PseudoSlideField(user, project)


class SampleFieldsForm(SlideForm):
    n = forms.IntegerField(min_value=1, max_value=200, initial=5, label="number of fields")
    size_px = forms.IntegerField(min_value=16, max_value=20_000, initial=1024, label="size (px)")
    mpp = forms.FloatField(required=False, min_value=0.01, max_value=100, initial=0.25, label="µm/px",
                           widget=forms.NumberInput(attrs={"step": "any"}))
    seed = forms.IntegerField(required=False, initial=0, min_value=0)


class DrawnFieldForm(SlideForm):
    # Bounds are left to services.check_region, which names the slide's size in its message.
    x = forms.IntegerField()
    y = forms.IntegerField()
    width = forms.IntegerField()
    height = forms.IntegerField()


def problems_of(form) -> list[str]:
    """Every form error as 'field: message' (for the page's error message)."""
    out = []
    for name, errors in form.errors.items():
        label = (form.fields[name].label or name) if name in form.fields else ""
        out.extend(f"{label}: {e}" if label else str(e) for e in errors)
    return out
