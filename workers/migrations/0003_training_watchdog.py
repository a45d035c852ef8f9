"""TrainingRun.attempt (times a worker started the run; the loop's writes carry it), and the django-q2
schedule of the training watchdog (workers.training.watch_training_runs) every minute."""

from django.db import migrations, models

FUNC = "workers.training.watch_training_runs"


def forwards(apps, schema_editor):
    TrainingRun = apps.get_model("workers", "TrainingRun")
    TrainingRun.objects.filter(started_at__isnull=False).update(attempt=1)  # runs started before attempts were counted
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(func=FUNC, defaults={"name": "training watchdog: resume or fail lost runs",
                                                        "schedule_type": "I", "minutes": 1, "repeats": -1})


def backwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=FUNC).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("workers", "0002_training_run"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="trainingrun",
            name="attempt",
            field=models.PositiveSmallIntegerField(
                default=0, help_text="times a worker started this run; after the first it resumes from its checkpoint"),
        ),
        migrations.RunPython(forwards, backwards),
    ]
