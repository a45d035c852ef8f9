"""Done analyses of slides with active regions whose corrections version is still 0: their scores count
inside the regions, so their version says "corrected" as their counts do (viewer.carry bumps it for
re-runs from now on; re-runs carried before did not when the earlier run had no point correction)."""

from django.db import migrations
from django.utils import timezone


def bump_region_only_runs(apps, schema_editor):
    Region = apps.get_model("viewer", "Region")
    CorrectionSet = apps.get_model("viewer", "CorrectionSet")
    AnalysisJob = apps.get_model("analysis", "AnalysisJob")
    slides = Region.objects.filter(deleted_at__isnull=True).values_list("slide_id", flat=True).distinct()
    now = timezone.now()
    for job in AnalysisJob.objects.filter(slide_id__in=list(slides), status="done").exclude(result_file=""):
        correction_set, _ = CorrectionSet.objects.get_or_create(job=job)
        if correction_set.version == 0:
            correction_set.version, correction_set.updated_at = 1, now
            correction_set.save(update_fields=["version", "updated_at"])


class Migration(migrations.Migration):

    dependencies = [
        ("viewer", "0003_regions_on_slides"),
        ("analysis", "0006_job_stage_lease"),
    ]

    operations = [migrations.RunPython(bump_region_only_runs, migrations.RunPython.noop)]
