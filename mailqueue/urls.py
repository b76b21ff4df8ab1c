from django.urls import path

from mailqueue import views

app_name = "mailqueue"

urlpatterns = [
    path("servers/<slug:server>/queue/", views.queue_overview, name="overview"),
    path("servers/<slug:server>/queue/summary/", views.queue_summary, name="summary"),
    path("servers/<slug:server>/queue/freshness/", views.queue_freshness, name="freshness"),
    path("servers/<slug:server>/queue/act/", views.act_on_messages, name="act"),
    path("servers/<slug:server>/queue/select/", views.act_by_selector, name="select"),
    path("servers/<slug:server>/queue/refresh/", views.refresh_index, name="refresh"),
    path("servers/<slug:server>/queue/messages/<slug:queue_id>/", views.message_detail, name="message"),
    path("servers/<slug:server>/queue/panel/", views.dashboard_panel, name="panel"),
    path("servers/<slug:server>/queue/alerts/", views.alert_banner, name="alert_banner"),
    path("servers/<slug:server>/queue/alerts/settings/", views.alert_settings, name="alert_settings"),
    path("servers/<slug:server>/queue/alerts/settings/save/", views.alert_settings_save, name="alert_settings_save"),
    path("queue/actions/<int:pk>/", views.action_detail, name="action_detail"),
    path("queue/actions/<int:pk>/progress/", views.action_progress, name="action_progress"),
    path("queue/actions/<int:pk>/retry/", views.retry_action, name="action_retry"),
]
