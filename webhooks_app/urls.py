from django.urls import path, re_path

from webhooks_app import views

app_name = "webhooks"

urlpatterns = [
    path("<slug:source_slug>/", views.intake, name="intake"),
    # Served, not redirected: a 301 to the slashed URL would make the sender drop the body.
    path("<slug:source_slug>", views.intake, name="intake-no-slash"),
    # [\s\S], not ".": a path holding a newline (%0A) must land here too, not in Django's HTML 404.
    re_path(r"^(?P<path>[\s\S]*)$", views.not_found, name="not-found"),
]
