"""The "integration" group (hospital systems' service users: may submit orders), admins' access to the
integration models in the Django admin, and the django-q2 schedule that sends due results every minute."""

from django.db import migrations


def forwards(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config("integration")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = Permission.objects.filter(content_type__app_label="integration")
    Group.objects.get_or_create(name="integration")[0].permissions.add(*perms.filter(codename="submit_orders"))
    # Admins see both (the admin site's pages) and may send outbox rows again; messages are never edited.
    for admin in Group.objects.filter(name="admin"):
        admin.permissions.add(*perms.filter(codename__in=["view_inboundmessage", "view_outboxmessage",
                                                          "change_outboxmessage"]))
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(name="integration-deliver-outbox", defaults={
        "func": "integration.delivery.deliver_due", "schedule_type": "I", "minutes": 1, "repeats": -1})


def backwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="integration-deliver-outbox").delete()
    apps.get_model("auth", "Group").objects.filter(name="integration").delete()


class Migration(migrations.Migration):
    dependencies = [("integration", "0001_initial"), ("cases", "0002_roles"), ("auth", "0012_alter_user_first_name_max_length"),
                    ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]
    operations = [migrations.RunPython(forwards, backwards)]
