from django.apps import AppConfig


class WebhooksAppConfig(AppConfig):
    name = "webhooks_app"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Handlers register themselves on import.
        # The source admin registers itself on import (webhooks_app.admin leaves sources to it).
        import webhooks_app.admin_sources  # noqa: F401
        from webhooks_app.handlers import task_generation  # noqa: F401
