from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "cases"
    verbose_name = "Clinical record"

    def ready(self):
        import os

        from django.conf import settings
        from django.core.checks import register

        from pdl1site.conf import check_renamed_settings, check_rest_framework

        # A project still setting an unprefixed name of a module setting is warned (pdl1site.W001).
        register(check_renamed_settings)
        # A host whose REST_FRAMEWORK would show patients across departments does not start (pdl1site.E002/3).
        register(check_rest_framework)
        # Uploads stream into this folder; Django does not create it.
        os.makedirs(settings.FILE_UPLOAD_TEMP_DIR, exist_ok=True)
        from cases import audit  # noqa: F401  registers models with auditlog
        from cases.documents import store_at_signing
        from cases.models import Report
        from cases.signals import report_documents

        report_documents.connect(store_at_signing, sender=Report, dispatch_uid="cases.documents.store_at_signing")
