"""Regions belong to the slide, not to one analysis of it (issue 18 item 5): every region gets its
job's slide; the job stays as drawn_on (whose correction version the region bumped). Corrections
carry over to a re-run (viewer.carry): CorrectionSet.carried_from / carry_report, Correction.carried_from."""

import django.db.models.deletion
from django.db import migrations, models


def regions_to_slides(apps, schema_editor):
    Region = apps.get_model("viewer", "Region")
    AnalysisJob = apps.get_model("analysis", "AnalysisJob")
    slide_of = dict(AnalysisJob.objects.filter(pk__in=Region.objects.values("job_id")).values_list("pk", "slide_id"))
    for region in Region.objects.all().only("pk", "job_id"):
        Region.objects.filter(pk=region.pk).update(slide_id=slide_of[region.job_id])


def slides_to_regions(apps, schema_editor):
    pass  # drawn_on (the former job) is kept: going back needs nothing but the column drop


class Migration(migrations.Migration):

    dependencies = [
        ("analysis", "0002_analysis_jobs"),
        ("cases", "0001_initial"),
        ("viewer", "0002_regions"),
    ]

    operations = [
        migrations.AddField(
            model_name="region",
            name="slide",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name="regions",
                                    to="cases.slide"),
        ),
        migrations.RunPython(regions_to_slides, slides_to_regions),
        migrations.AlterField(
            model_name="region",
            name="slide",
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="regions",
                                    to="cases.slide"),
        ),
        migrations.RenameField(model_name="region", old_name="job", new_name="drawn_on"),
        migrations.AlterField(
            model_name="region",
            name="drawn_on",
            field=models.ForeignKey(blank=True, help_text="the job whose viewer it was drawn in (its version counts there)",
                                    null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                    to="analysis.analysisjob"),
        ),
        migrations.AlterField(
            model_name="region",
            name="version",
            field=models.PositiveIntegerField(help_text="the version of drawn_on's CorrectionSet this region created"),
        ),
        migrations.AlterModelOptions(name="region", options={"ordering": ["slide", "created_at", "pk"]}),
        migrations.AddField(
            model_name="correctionset",
            name="carried_from",
            field=models.ForeignKey(blank=True, help_text="the earlier run whose corrections were carried over",
                                    null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                    to="analysis.analysisjob"),
        ),
        migrations.AddField(
            model_name="correctionset",
            name="carry_report",
            field=models.JSONField(blank=True, help_text="what was carried over from the earlier run and what was "
                                   "not (viewer.carry); null: nothing to carry was looked for yet", null=True),
        ),
        migrations.AddField(
            model_name="correction",
            name="carried_from",
            field=models.ForeignKey(blank=True, help_text="the earlier run's correction this one carries over "
                                    "(viewer.carry)", null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="+", to="viewer.correction"),
        ),
    ]
