"""URLs of the map pages (see mailadmin/urls.py)."""

urlpatterns: list = []
