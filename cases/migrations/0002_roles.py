"""Create the role groups and give each its model permissions (used by the Django admin)."""

from django.conf import settings
from django.db import migrations

ROLE_PERMISSIONS = {
    "admin": None,  # every permission of the platform's apps
    "pathologist": ["view_patient", "add_patient", "change_patient", "view_case", "add_case", "change_case",
                    "view_slide", "add_slide", "change_slide", "view_report", "add_report", "change_report"],
    "annotator": [],
    "clinician": [],
}


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        if codenames is None:
            # The user model's app too: a host project's own user model (AUTH_USER_MODEL) is not in "auth".
            user_app = settings.AUTH_USER_MODEL.split(".")[0]
            perms = Permission.objects.filter(content_type__app_label__in=["cases", "auth", "auditlog", user_app])
        else:
            perms = Permission.objects.filter(content_type__app_label="cases", codename__in=codenames)
        group.permissions.add(*perms)


class Migration(migrations.Migration):
    dependencies = [("cases", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length"),
                    migrations.swappable_dependency(settings.AUTH_USER_MODEL), ("auditlog", "0001_initial")]
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
