"""URLs of the map and class file pages (see mailadmin/urls.py)."""

from django.urls import path

from mailadmin import map_views

urlpatterns = [
    path("servers/<slug:server>/maps/", map_views.map_list, name="map_list"),
    path("servers/<slug:server>/maps/add/<str:map_name>/", map_views.map_add, name="map_add"),
    path("servers/<slug:server>/maps/rows/<int:pk>/", map_views.map_edit, name="map_edit"),
    path("servers/<slug:server>/maps/rows/<int:pk>/delete/", map_views.map_delete, name="map_delete"),
    path("servers/<slug:server>/maps/sources/", map_views.map_sources_ask, name="map_sources_ask"),
    path("servers/<slug:server>/maps/sources/<int:pk>/import/", map_views.map_import, name="map_import"),
]
