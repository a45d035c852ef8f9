from django.apps import AppConfig


class IntegrationConfig(AppConfig):
    name = "integration"
    verbose_name = "Hospital integration (HL7 v2, FHIR)"

    def ready(self):
        from cases.signals import report_signed
        from integration import audit, checks  # noqa: F401  registers the models with auditlog, the system checks
        from integration.outbox import enqueue_results

        # Sent by Report.sign inside the signing transaction: the outbox rows commit with the signature.
        report_signed.connect(enqueue_results, dispatch_uid="integration.enqueue_results")
