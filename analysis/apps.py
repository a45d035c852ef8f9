from django.apps import AppConfig


class AnalysisConfig(AppConfig):
    name = "analysis"

    def ready(self):
        from analysis import audit  # noqa: F401  registers models with auditlog
