from urllib.parse import urlencode

from django import forms
from django.urls import reverse
from django.utils.html import format_html

from cases.access import filing_departments, filing_patients
from cases.choices import Marker
from cases.models import Case, Patient, Slide
from cases.services import (
    IngestError,
    RegistrationRefused,
    check_accession_free,
    check_mrn_free,
    check_slide_case_change,
)


def _refusal(exc: RegistrationRefused, link: str, label: str) -> forms.ValidationError:
    """The refusal, with a link to the record holding the number when the user may see it."""
    if exc.existing is None:
        return forms.ValidationError(str(exc))
    return forms.ValidationError(format_html('{} <a href="{}">{}</a>', str(exc), link, label))


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["mrn", "family_name", "given_name", "birth_date", "sex", "department"]
        widgets = {"birth_date": forms.DateInput(attrs={"type": "date"})}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].queryset = filing_departments(user)
        self.user = user

    def clean_mrn(self):
        # Before the model's unique check, which would confirm another department's patient (a field
        # refused here is not checked again).
        mrn = self.cleaned_data["mrn"]
        try:
            return check_mrn_free(mrn, self.user, self.instance)
        except RegistrationRefused as exc:
            raise _refusal(exc, f"{reverse('cases:case-list')}?{urlencode({'q': mrn})}", "Their cases") from None


class CaseForm(forms.ModelForm):
    class Meta:
        model = Case
        fields = ["accession", "patient", "department", "indication", "assay_clone", "specimen"]

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # Patients of the user's departments only: an assigned case of another department is worked on,
        # never used to open that patient's cases elsewhere (access.may_refile).
        self.fields["patient"].queryset = filing_patients(user)
        self.fields["department"].queryset = filing_departments(user)
        self.user = user

    def clean_accession(self):
        # Before the model's unique check, which would confirm another department's case.
        try:
            return check_accession_free(self.cleaned_data["accession"], self.user, self.instance)
        except RegistrationRefused as exc:
            raise _refusal(exc, exc.existing.get_absolute_url() if exc.existing else "", "Open the case") from None


class SlideAdminForm(forms.ModelForm):
    """A slide moved to another case in the admin is checked as at upload (services.check_slide_case_change):
    a DICOM file naming another patient or accession than the case's stays where it is."""

    class Meta:
        model = Slide
        fields = "__all__"

    def clean_case(self):
        case = self.cleaned_data.get("case")
        try:
            check_slide_case_change(self.instance, case)
        except IngestError as exc:
            raise forms.ValidationError(str(exc)) from None
        return case


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        files = [single(item, initial) for item in data] if isinstance(data, (list, tuple)) else [single(data, initial)]
        return [f for f in files if f]


class SlideUploadForm(forms.Form):
    files = MultipleFileField(label="Slide file(s)", help_text="One slide file, or every file of a DICOM series.")
    mpp = forms.FloatField(label="µm per pixel", required=False,
                           help_text="Only needed when the file does not store its resolution.")
    marker = forms.ChoiceField(choices=Marker.choices, initial=Marker.PDL1)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # An empty file is rejected by the ingest service with a clear message, not here.
        self.fields["files"].allow_empty_file = True


class MppForm(forms.Form):
    mpp_x = forms.FloatField(label="µm per pixel (x)")
    mpp_y = forms.FloatField(label="µm per pixel (y)", required=False, help_text="Leave empty if square pixels.")


class ReportDraftForm(forms.Form):
    job = forms.ModelChoiceField(queryset=None, label="Analysis", empty_label=None)
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, jobs=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["job"].queryset = jobs
        self.fields["job"].label_from_instance = lambda job: (
            f"Job {job.pk} · {job.slide.original_name} · {job.detector} · {job.finished_at:%Y-%m-%d %H:%M}"
            if job.finished_at else f"Job {job.pk} · {job.slide.original_name} · {job.detector}")


class ReportCommentForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class ReportSignForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
                               strip=False, label="Your password (confirms your identity)")


class ReportAmendForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Reason for the amendment")
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class SlideQcOverrideForm(forms.Form):
    """A pathologist's reason to score a slide that failed its check before scoring."""

    qc_override = forms.CharField(
        label="Reason to score this slide anyway", max_length=2000, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Printed on every report this slide feeds, with your name (e.g. 'PD-L1-negative tumour; "
                  "staining verified on the control').")
