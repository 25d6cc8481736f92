from django.apps import AppConfig


class OpsAppConfig(AppConfig):
    name = "ops_app"
    verbose_name = "Operations"

    def ready(self) -> None:
        from celery.signals import task_failure

        from ops_app.errors import task_failure_record

        # Every Celery task that raises out of its last try becomes an error record. weak=False:
        # the receiver is a module function, but a weak reference would still be a trap later.
        task_failure.connect(task_failure_record, weak=False, dispatch_uid="ops_app.task_failure_record")
