"""The shipped starter model was registered as clinical at migrate time, with no evaluation or promotion,
although classic beats it on every real held-out source (bench/RESULTS-accuracy.md) and it trained on
SYNTHETIC and non-commercial DeepLIIF fields. A model is research until it is validated and promoted: a
shipped model without a promotion record is lowered to research (one promoted through the review stays
clinical). Jobs that ran it keep their results; they no longer feed a new signed report
(AnalysisJob.research_use_reason). An activation of it, if an older release made one, stays as history but
is no longer used (ActiveModel.current takes clinical models only)."""

from django.db import migrations


def lower_unpromoted_shipped_models(apps, schema_editor):
    ModelVersion = apps.get_model("analysis", "ModelVersion")
    db = schema_editor.connection.alias
    (ModelVersion.objects.using(db)
     .filter(origin="shipped", status="clinical", promotions__isnull=True)
     .update(status="research"))


class Migration(migrations.Migration):

    dependencies = [
        ("analysis", "0008_stage_attempts_help"),
    ]

    operations = [
        # Not reversed: which shipped model was clinical before is not recorded, and none should be.
        migrations.RunPython(lower_unpromoted_shipped_models, migrations.RunPython.noop),
    ]
