from django.apps import AppConfig


class OpsAppConfig(AppConfig):
    name = "ops_app"
    verbose_name = "Operations"

    def ready(self) -> None:
        from celery.signals import beat_init, task_failure

        from ops_app.beat_sync import beat_schedule_sync_on_start
        from ops_app.errors import task_failure_record

        # Every Celery task that raises out of its last try becomes an error record. weak=False:
        # the receiver is a module function, but a weak reference would still be a trap later.
        task_failure.connect(task_failure_record, weak=False, dispatch_uid="ops_app.task_failure_record")
        # config/beat.py is the only schedule: at every beat start the database's copy follows
        # it, so a renamed or removed job stops instead of running on from an old row. Connected
        # here rather than in config/celery_app.py, so config keeps importing no app.
        beat_init.connect(beat_schedule_sync_on_start, weak=False, dispatch_uid="ops_app.beat_schedule_sync")
