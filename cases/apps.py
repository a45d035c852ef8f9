from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "cases"
    verbose_name = "Clinical record"

    def ready(self):
        import os

        from django.conf import settings

        # Uploads stream into this folder; Django does not create it.
        os.makedirs(settings.FILE_UPLOAD_TEMP_DIR, exist_ok=True)
        from cases import audit  # noqa: F401  registers models with auditlog
