from django.contrib.auth import views as auth_views
from django.urls import include, path

from mailadmin import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("servers/", views.server_list, name="server_list"),
    # Before <slug:server>/: these names are reserved (MailServerForm refuses them as server names).
    path("servers/add/", views.server_add, name="server_add"),
    path("servers/create/", views.server_create, name="server_create"),
    path("servers/<slug:server>/", views.dashboard, name="dashboard"),
    path("servers/<slug:server>/status/", views.daemon_status, name="daemon_status"),
    path("servers/<slug:server>/service/", views.service_action, name="service_action"),
    path("servers/<slug:server>/config/installed/", views.configuration, name="configuration"),
    path("actions/service/<int:pk>/", views.service_action_detail, name="service_action_detail"),
    path("actions/service/<int:pk>/progress/", views.service_action_progress, name="service_action_progress"),
    path("audit/", views.audit_list, name="audit_list"),
    path("", include("tlsconfig.urls")),
    path("", include("mailqueue.urls")),
]
