"""URLs of the address pages (see mailadmin/urls.py)."""

from django.urls import path

from mailadmin import address_views

urlpatterns = [
    path("servers/<slug:server>/address-test/", address_views.address_test, name="address_test"),
    path("servers/<slug:server>/address-test/ask/", address_views.address_test_ask, name="address_test_ask"),
]
