from django.apps import AppConfig


class HostUsersConfig(AppConfig):
    name = "hostproject.hostusers"
    label = "hostusers"
    default_auto_field = "django.db.models.BigAutoField"
