"""URLs of the map and class file pages (see mailadmin/urls.py)."""

from django.urls import path

from mailadmin import map_views

urlpatterns = [
    path("servers/<slug:server>/maps/", map_views.map_list, name="map_list"),
]
