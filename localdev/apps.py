from django.apps import AppConfig


class LocaldevConfig(AppConfig):
    name = "localdev"
    verbose_name = "Local development"
