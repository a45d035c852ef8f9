from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    verbose_name = "Point annotation"

    def ready(self):
        from annotations import audit  # noqa: F401  registers models with auditlog
