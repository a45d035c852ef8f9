"""Helpers of the annotation tests."""

from annotations import services
from tests.viewer import SlideFactory, client_for  # noqa: F401  re-exported


def project_with_field(personas, region=(1000, 1000, 512, 512), slide=None, extra_labels=(), annotators=None):
    """A project of the pathologist with one field on a slide of the personas' case, and its sessions."""
    slide = slide or SlideFactory(case=personas["case"])
    annotators = [personas["annotator"]] if annotators is None else annotators
    project = services.do_create_project(personas["pathologist"], "lung batch", "lung_squamous", "PD-L1",
                                         extra_labels, annotators)
    field = services.do_create_field(project, slide, *region, user=personas["pathologist"])
    return project, field


def session_of(field, user):
    return field.sessions.get(annotator=user)
