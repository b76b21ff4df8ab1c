"""The address tester's page: "where does this address go?", with the installed configuration or a
finished build tried before it is installed.

Thin views (conventions of mailadmin/config_views.py): the address is checked by its type here
(mailadmin/cf/addressresult.py) and again by the agent; the question is an AgentRequest row
(requests.ask, audited) that the host's agent answers by running sendmail
(mailadmin/mta/addresstest.py); the page follows the row with htmx until the answer is there.
It changes nothing on the host, so viewers may use it; it is a POST because it writes a row.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from mailadmin import config, requests
from mailadmin.cf import addressresult
from mailadmin.models import AgentRequest, ConfigBuild, MailServer
from mailadmin.roles import Role, require_role
from mailadmin.views import AGENT_RESULT_TEMPLATES, get_server, render_page
from mailadmin.work import WorkStatus

KIND = "address test"
RESULT_TEMPLATE = "mailadmin/_address_result.html"
# The polled fragment may render the answer with this template (it names templates by ?result=).
AGENT_RESULT_TEMPLATES.add(RESULT_TEMPLATE)
BUILDS_OFFERED = 20


def testable_builds(server: MailServer):
    """The server's builds that have a cf to try, newest first."""
    return server.builds.filter(status=WorkStatus.DONE).exclude(cf_text="").order_by("-pk")[:BUILDS_OFFERED]


def asked_context(server: MailServer, pk: str | None) -> dict | None:
    """The test named in the query string (an AgentRequest of this server), as _agent_request.html shows it."""
    if not pk or not pk.isdigit():
        return None
    row = AgentRequest.objects.select_related("server", "server__host").filter(pk=int(pk), server=server, kind=KIND)
    row = row.first()
    return requests.request_context(row, RESULT_TEMPLATE) if row else None


@require_role(Role.VIEWER)
@require_GET
def address_test(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    asked = asked_context(mail_server, request.GET.get("test"))
    params = asked["item"].params if asked else {}
    context = {
        "server": mail_server,
        "builds": testable_builds(mail_server),
        "live": config.live_build(mail_server),
        "asked": asked,
        "address": params.get("address", ""),
        "chosen_build": params.get("build"),
    }
    return render_page(request, "mailadmin/address_test.html", context, section="configuration")


@require_role(Role.VIEWER)
@require_POST
def address_test_ask(request: HttpRequest, server: str) -> HttpResponse:
    """Check the address and the build, then ask the host's agent (an audited AgentRequest row)."""
    mail_server = get_server(server)
    back = redirect("address_test", server=mail_server.name)
    try:
        address = addressresult.clean_address(request.POST.get("address", "").strip(" "))
    except ValidationError as exc:
        messages.error(request, "Address: " + " ".join(exc.messages))
        return back
    params: dict = {"address": address}
    configuration = request.POST.get("configuration", "installed")
    if configuration != "installed":
        build = None
        if configuration.isdigit():
            build = ConfigBuild.objects.filter(pk=int(configuration), server=mail_server).first()
        if build is None or build.status != WorkStatus.DONE or not build.cf_text:
            messages.error(request, "Configuration: choose the installed one or a finished build of this server.")
            return back
        params["build"] = build.pk
    row = requests.ask(mail_server, KIND, params, request=request)
    return redirect(reverse("address_test", args=[mail_server.name]) + "?" + urlencode({"test": row.pk}))
