from django.apps import AppConfig


class WebhooksAppConfig(AppConfig):
    name = "webhooks_app"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Handlers register themselves on import.
        from webhooks_app.handlers import task_generation  # noqa: F401
