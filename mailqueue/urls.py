from django.urls import path

from mailqueue import views

app_name = "mailqueue"

urlpatterns = [
    path("servers/<slug:server>/queue/", views.queue_overview, name="overview"),
]
