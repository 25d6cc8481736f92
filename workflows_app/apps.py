from django.apps import AppConfig


class WorkflowsAppConfig(AppConfig):
    name = "workflows_app"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # Handlers register themselves with webhooks_app's registry on import.
        from workflows_app.handlers import calls  # noqa: F401
