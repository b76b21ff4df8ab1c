"""URLs of the listener pages (see mailadmin/urls.py)."""

urlpatterns: list = []
