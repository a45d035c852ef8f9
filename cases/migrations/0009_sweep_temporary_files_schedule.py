"""The django-q2 schedule that removes what killed uploads and ingests left in the temporary folder
(cases.uploads.sweep_stale_temporary_files), every hour."""

from django.db import migrations

FUNC = "cases.uploads.sweep_stale_temporary_files"


def forwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.get_or_create(
        func=FUNC, defaults={"name": "remove stale temporary upload files", "schedule_type": "H", "repeats": -1})


def backwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=FUNC).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("cases", "0008_nonsquamous_nsclc_indication"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
