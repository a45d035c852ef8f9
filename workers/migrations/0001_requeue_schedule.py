"""Schedule the watchdog that requeues overdue detect batches every minute."""

from django.db import migrations

FUNC = "workers.tasks.requeue_overdue_batches"


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(func=FUNC, defaults={"name": "requeue overdue detect batches",
                                                        "schedule_type": "I", "minutes": 1, "repeats": -1})


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=FUNC).delete()


class Migration(migrations.Migration):
    dependencies = [("django_q", "0018_task_success_index")]
    operations = [migrations.RunPython(create, remove)]
