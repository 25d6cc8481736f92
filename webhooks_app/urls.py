from django.urls import path

from webhooks_app import views

app_name = "webhooks"

urlpatterns = [
    path("<slug:source_slug>/", views.intake, name="intake"),
]
