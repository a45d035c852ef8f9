"""Slides stored before the allowlist kept every reader property, DICOM PatientName, PatientID,
PatientBirthDate and AccessionNumber and Aperio file names included; keep only the technical ones
(slideio.slidefile.technical_properties), as ingest does now. The file itself is unchanged."""

from django.db import migrations


def forwards(apps, schema_editor):
    from slideio.slidefile import technical_properties

    Slide = apps.get_model("cases", "Slide")
    for slide in Slide.objects.only("pk", "properties").iterator():
        kept = technical_properties(slide.properties or {})
        if kept != (slide.properties or {}):
            Slide.objects.filter(pk=slide.pk).update(properties=kept)


class Migration(migrations.Migration):

    dependencies = [("cases", "0009_sweep_temporary_files_schedule")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
