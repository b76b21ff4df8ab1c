"""/api/: the schema, its docs page, and version 1 of the API. Every view here is reached without a
console session (a token is enough), so each one is marked login_not_required and checks its own;
the docs and token pages are console pages like any other."""

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView

from api import config_views, console_views, docs, map_views, tls_views, views

app_name = "api"


def open_view(view_class, **kwargs):
    return login_not_required(view_class.as_view(**kwargs))


@login_not_required
@csrf_exempt
def not_found(request, rest: str) -> JsonResponse:
    """Under /api/v1/ even a path no route matches (a negative id) is answered in JSON. It changes
    nothing, so a POST to it needs no CSRF token to be told so."""
    return JsonResponse({"detail": "Not found."}, status=404)


urlpatterns = [
    path("schema/", open_view(SpectacularAPIView, permission_classes=[], authentication_classes=[]), name="schema"),
    path("docs/", docs.swagger_ui, name="docs"),
    # The console's page for a user's own tokens: a session page like any other.
    path("tokens/", console_views.token_list, name="tokens"),
    path("tokens/new/", console_views.token_create, name="token_create"),
    path("tokens/<int:pk>/revoke/", console_views.token_revoke, name="token_revoke"),
    path("v1/servers/", open_view(views.ServerList), name="servers"),
    path("v1/servers/<slug:server>/", open_view(views.ServerDetail), name="server"),
    path("v1/servers/<slug:server>/queue/", open_view(views.QueueList), name="queue"),
    path("v1/servers/<slug:server>/queue/<str:queue_id>/", open_view(views.QueueMessageDetail), name="queue_message"),
    path("v1/servers/<slug:server>/options/", open_view(config_views.Options), name="options"),
    path("v1/servers/<slug:server>/features/", open_view(config_views.Features), name="features"),
    path("v1/servers/<slug:server>/access/", open_view(config_views.AccessEntries), name="access"),
    path("v1/servers/<slug:server>/builds/", open_view(config_views.Builds), name="builds"),
    path("v1/access/<int:pk>/", open_view(config_views.AccessEntryDetail), name="access_entry"),
    path("v1/servers/<slug:server>/maps/", open_view(map_views.Maps), name="maps"),
    path("v1/servers/<slug:server>/maps/<str:map_name>/rows/", open_view(map_views.MapRows), name="map_rows"),
    path(
        "v1/servers/<slug:server>/maps/<str:map_name>/rows/<int:pk>/",
        open_view(map_views.MapRowDetail),
        name="map_row",
    ),
    path("v1/servers/<slug:server>/maps/<str:map_name>/text/", open_view(map_views.MapText), name="map_text"),
    path("v1/servers/<slug:server>/listeners/", open_view(map_views.Listeners), name="listeners"),
    path("v1/servers/<slug:server>/listeners/<int:pk>/", open_view(map_views.ListenerDetail), name="listener"),
    path("v1/builds/<int:pk>/", open_view(config_views.BuildDetail), name="build"),
    path("v1/builds/<int:pk>/install/", open_view(config_views.BuildInstall), name="build_install"),
    path("v1/installs/<int:pk>/", open_view(config_views.InstallDetail), name="install"),
    path("v1/servers/<slug:server>/certificates/", open_view(tls_views.Certificates), name="certificates"),
    path("v1/servers/<slug:server>/tls/generate/", open_view(tls_views.Generate), name="tls_generate"),
    path("v1/servers/<slug:server>/tls/deploy/", open_view(tls_views.Deploy), name="tls_deploy"),
    path("v1/certificates/<int:pk>/", open_view(tls_views.CertificateDetail), name="certificate"),
    path("v1/tls-jobs/<int:pk>/", open_view(tls_views.TlsJobDetail), name="tls_job"),
    path("v1/deployments/<int:pk>/", open_view(tls_views.DeploymentDetail), name="deployment"),
    path("v1/queue-actions/<int:pk>/", open_view(views.QueueActionDetail), name="queue_action"),
    path("v1/traces/", open_view(views.TraceList), name="traces"),
    path("v1/traces/<int:pk>/", open_view(views.TraceDetail), name="trace"),
    path("v1/audit/", open_view(views.AuditList), name="audit"),
    re_path(r"^v1/(?P<rest>[\s\S]*)$", not_found, name="not_found"),
]
