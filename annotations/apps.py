from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    verbose_name = "Point annotation"

    def ready(self):
        from analysis import datasets
        from annotations import audit  # noqa: F401  registers models with auditlog
        from annotations.dataset import db_samples

        datasets.provide_db_samples(db_samples)  # train_detector --source db:MARKER
