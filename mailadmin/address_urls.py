"""URLs of the address pages (see mailadmin/urls.py)."""

urlpatterns: list = []
