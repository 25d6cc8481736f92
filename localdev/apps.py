from django.apps import AppConfig


class LocaldevConfig(AppConfig):
    name = "localdev"
    verbose_name = "Local development"

    def ready(self) -> None:
        from localdev.bookings import bookings_watch

        bookings_watch()
