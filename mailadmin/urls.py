from django.contrib.auth import views as auth_views
from django.urls import include, path

from mailadmin import config_views, host_views, views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("servers/", host_views.server_list, name="server_list"),
    path("hosts/<int:pk>/approve/", host_views.host_approve, name="host_approve"),
    path("servers/<slug:server>/", views.dashboard, name="dashboard"),
    path("servers/<slug:server>/status/", views.daemon_status, name="daemon_status"),
    path("servers/<slug:server>/service/", views.service_action, name="service_action"),
    path("servers/<slug:server>/config/installed/", views.configuration, name="configuration"),
    path("servers/<slug:server>/config/", config_views.config_edit, name="config_edit"),
    path("servers/<slug:server>/config/option/", config_views.option_set, name="option_set"),
    path("servers/<slug:server>/config/feature/", config_views.feature_set, name="feature_set"),
    path("servers/<slug:server>/builds/", config_views.build_start, name="build_start"),
    path("servers/<slug:server>/access/", config_views.access_list, name="access_list"),
    path("servers/<slug:server>/access/add/", config_views.access_add, name="access_add"),
    path("servers/<slug:server>/access/lookup/", config_views.access_lookup, name="access_lookup"),
    path("access/<int:pk>/delete/", config_views.access_delete, name="access_delete"),
    path("builds/<int:pk>/", config_views.build_detail, name="build_detail"),
    path("builds/<int:pk>/progress/", config_views.build_progress, name="build_progress"),
    path("builds/<int:pk>/install/", config_views.build_install, name="build_install"),
    path("installs/<int:pk>/", config_views.install_detail, name="install_detail"),
    path("installs/<int:pk>/progress/", config_views.install_progress, name="install_progress"),
    path("actions/service/<int:pk>/", views.service_action_detail, name="service_action_detail"),
    path("actions/service/<int:pk>/progress/", views.service_action_progress, name="service_action_progress"),
    path("agent-requests/<int:pk>/progress/", views.agent_request_progress, name="agent_request_progress"),
    path("audit/", views.audit_list, name="audit_list"),
    path("", include("tlsconfig.urls")),
    path("", include("mailqueue.urls")),
    path("", include("tracking.urls")),
]
