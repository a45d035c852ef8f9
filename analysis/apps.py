from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AnalysisConfig(AppConfig):
    name = "analysis"

    def ready(self):
        from analysis import audit  # noqa: F401  registers models with auditlog
        from analysis.registry import register_starter_after_migrate

        post_migrate.connect(register_starter_after_migrate, sender=self, dispatch_uid="analysis-register-starter")
