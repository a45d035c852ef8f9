"""Migration cases 0010: slides stored before the allowlist lose their identifying reader properties."""

import importlib

import pytest
from django.apps import apps

from cases.models import Slide
from cases.services import IngestSource, do_ingest_slide
from tests.conftest import shared_slide

pytestmark = pytest.mark.django_db


def test_identifying_properties_of_slides_stored_before_are_removed():
    slide = do_ingest_slide([IngestSource(name="small.svs", path=shared_slide("small.svs"))]).slide
    technical = dict(slide.properties)
    Slide.objects.filter(pk=slide.pk).update(properties={**technical, "dicom.PatientName": "Doe^Jane",
                                                          "aperio.Filename": "S26-00042 Doe"})
    migration = importlib.import_module("cases.migrations.0010_slide_properties_technical_only")
    migration.forwards(apps, None)
    slide.refresh_from_db()
    assert slide.properties == technical and "openslide.vendor" in slide.properties
