from django.urls import path

from tracking import views

app_name = "tracking"

urlpatterns = [
    path("tracking/", views.trace_search, name="search"),
    path("tracking/<int:pk>/", views.trace_detail, name="trace"),
]
