"""URLs of the listener pages (see mailadmin/urls.py)."""

from django.urls import path

from mailadmin import listener_views

urlpatterns = [
    path("servers/<slug:server>/listeners/", listener_views.listener_list, name="listener_list"),
    path("servers/<slug:server>/listeners/add/", listener_views.listener_add, name="listener_add"),
    path("servers/<slug:server>/listeners/<int:pk>/", listener_views.listener_edit, name="listener_edit"),
    path("servers/<slug:server>/listeners/<int:pk>/delete/", listener_views.listener_delete, name="listener_delete"),
]
