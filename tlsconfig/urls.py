from django.urls import path

from tlsconfig import views

app_name = "tlsconfig"

urlpatterns = [
    path("servers/<slug:server>/tls/", views.tls_overview, name="overview"),
    path("servers/<slug:server>/tls/upload/", views.upload_form, name="upload_form"),
    path("servers/<slug:server>/tls/upload/send/", views.upload, name="upload"),
    path("servers/<slug:server>/tls/generate/", views.generate, name="generate"),
    path("servers/<slug:server>/tls/deploy/", views.deploy, name="deploy"),
    path("servers/<slug:server>/tls/probe/", views.probe_page, name="probe"),
    path("servers/<slug:server>/tls/probe/message/", views.probe_message, name="probe_message"),
    path("servers/<slug:server>/tls/panel/", views.dashboard_panel, name="panel"),
    path("tls/certificates/<int:pk>/", views.certificate_detail, name="certificate"),
    path("tls/jobs/<int:pk>/", views.job_detail, name="job"),
    path("tls/jobs/<int:pk>/progress/", views.job_progress, name="job_progress"),
    path("tls/deployments/<int:pk>/", views.deployment_detail, name="deployment"),
    path("tls/deployments/<int:pk>/progress/", views.deployment_progress, name="deployment_progress"),
]
