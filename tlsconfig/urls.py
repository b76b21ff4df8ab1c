from django.urls import path

from tlsconfig import views

app_name = "tlsconfig"

urlpatterns = [
    path("servers/<slug:server>/tls/", views.tls_overview, name="overview"),
]
