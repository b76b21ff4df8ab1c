from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from mailadmin import overview
from mailadmin.roles import Role, require_role
from mailadmin.views import get_server, render_page
from tlsconfig import facts


@require_role(Role.VIEWER)
@require_GET
def tls_overview(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    cf = overview.installed_cf(mail_server)
    context = {
        "server": mail_server,
        "cf": cf,
        "cert_dir": facts.path_facts(mail_server.cert_dir),
        "options": facts.tls_options(cf),
        "ehlo": facts.ehlo(mail_server.smtp_address, mail_server.smtp_port),
    }
    return render_page(request, "tlsconfig/overview.html", context, section="tls")
