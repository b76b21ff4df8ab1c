"""TLS pages: thin views over tlsconfig.store and jobs (same conventions as mailadmin.views).

What only the MTA host can do (deploying files, probing the daemon) is asked of its agent:
Deployment rows and AgentRequest rows answered by tlsconfig/agentside.py.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from mailadmin import overview, requests
from mailadmin.models import AgentRequest
from mailadmin.roles import Role, has_role, require_role
from mailadmin.views import get_server, render_page, render_progress, work_context
from tlsconfig import facts, jobs, pki, services
from tlsconfig.forms import DeployForm, GenerateForm, UploadForm
from tlsconfig.models import Certificate, Deployment, TlsJob

# Access-map tags of the TLS policy; they are edited on the access map page with the other rows.
TLS_POLICY_TAGS = ("TLS_Clt", "TLS_Srv", "TLS_Rcpt", "Try_TLS")
PROBE_TEMPLATE = "tlsconfig/_probe_result.html"
PROBE_MESSAGE_TEMPLATE = "tlsconfig/_probe_message_result.html"


def store_context(mail_server, request, **forms) -> dict:
    return {
        "server": mail_server,
        "certificates": mail_server.tls_certificates.select_related("private_key", "issuer_ca"),
        "crls": mail_server.tls_crls.select_related("ca"),
        "dh_parameters": mail_server.tls_dh_parameters.all(),
        "requests": mail_server.tls_requests.select_related("certificate"),
        "jobs": mail_server.tls_jobs.all()[:8],
        "deployments": mail_server.tls_deployments.select_related("server_certificate", "build")[:5],
        "generate_form": forms.get("generate_form") or GenerateForm(server=mail_server),
        "deploy_form": forms.get("deploy_form") or DeployForm(server=mail_server),
        "can_administer": has_role(request.user, Role.ADMINISTRATOR),
        "warnings": jobs.expiry_warnings(mail_server),
        "policy_rows": mail_server.access_entries.filter(tag__in=TLS_POLICY_TAGS),
    }


def overview_context(mail_server, request, **forms) -> dict:
    """The store's rows and STARTTLS as the host's agent last saw it (its HostSnapshot): the page
    never touches the MTA."""
    snapshot = overview.snapshot_of(mail_server)
    cf = overview.installed_cf(mail_server, snapshot)
    tls = snapshot.tls if snapshot else {}
    return store_context(mail_server, request, **forms) | {
        "cf": cf,
        "snapshot": snapshot,
        "cert_dir": facts.cert_dir(mail_server.cert_dir, tls),
        "options": facts.tls_options(cf, tls),
        "ehlo": facts.EhloReply.from_snapshot(tls),
        "key_problems": facts.key_problems(tls),
    }


@require_role(Role.VIEWER)
@require_GET
def tls_overview(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    return render_page(request, "tlsconfig/overview.html", overview_context(mail_server, request), section="tls")


def upload_response(request, mail_server, form, status=200) -> HttpResponse:
    context = {"server": mail_server, "form": form, "limits": (pki.MAX_PEM_BYTES, pki.MAX_CRL_BYTES)}
    page = render_page(request, "tlsconfig/upload.html", context, section="tls")
    page.status_code = status
    return page


@require_role(Role.ADMINISTRATOR)
@require_GET
def upload_form(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    return upload_response(request, mail_server, UploadForm(server=mail_server, initial=request.GET.dict()))


@require_role(Role.ADMINISTRATOR)
@require_POST
def upload(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    form = UploadForm(request.POST, request.FILES, server=mail_server)
    if not form.is_valid():
        return upload_response(request, mail_server, form, status=400)
    data = form.cleaned_data
    try:
        row = services.store_upload(mail_server, data, request=request)
    except pki.PkiError as exc:
        form.add_error(None, str(exc))
        return upload_response(request, mail_server, form, status=400)
    if data["kind"] == "crl":
        messages.success(request, f"CRL of {row.issuer} stored ({row.revoked} revoked).")
        return redirect("tlsconfig:overview", server=mail_server.name)
    if data["kind"] == "dh":
        messages.success(request, f"DH parameters ({row.bits} bits) stored.")
        return redirect("tlsconfig:overview", server=mail_server.name)
    messages.success(request, f"{row.get_role_display().capitalize()} stored.")
    return redirect("tlsconfig:certificate", pk=row.pk)


@require_role(Role.VIEWER)
@require_GET
def certificate_detail(request: HttpRequest, pk: int) -> HttpResponse:
    certificate = get_object_or_404(Certificate.objects.select_related("server", "private_key", "issuer_ca"), pk=pk)
    context = {"server": certificate.server, "certificate": certificate, "issued": certificate.issued.all()}
    return render_page(request, "tlsconfig/certificate.html", context, section="tls")


@require_role(Role.ADMINISTRATOR)
@require_POST
def generate(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    form = GenerateForm(request.POST, server=mail_server)
    if not form.is_valid():
        context = overview_context(mail_server, request, generate_form=form)
        page = render_page(request, "tlsconfig/overview.html", context, section="tls")
        page.status_code = 400
        return page
    job = jobs.start_job(mail_server, form.cleaned_data["kind"], form.params(), request=request)
    return redirect("tlsconfig:job", pk=job.pk)


def job_context(job: TlsJob) -> dict:
    return work_context(job, "tlsconfig:job_progress", job=job)


@require_role(Role.VIEWER)
@require_GET
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(TlsJob.objects.select_related("server", "certificate", "request"), pk=pk)
    return render_page(request, "tlsconfig/job.html", job_context(job), section="tls")


@require_role(Role.VIEWER)
@require_GET
def job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(TlsJob.objects.select_related("server", "certificate", "request"), pk=pk)
    return render_progress(request, "tlsconfig/_job_result.html", job, job_context(job))


@require_role(Role.ADMINISTRATOR)
@require_POST
def deploy(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    form = DeployForm(request.POST, server=mail_server)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field.replace('_', ' ')}: {' '.join(errors)}")
        return redirect("tlsconfig:overview", server=mail_server.name)
    row = jobs.start_deployment(mail_server, form.cleaned_data, request=request)
    return redirect("tlsconfig:deployment", pk=row.pk)


def deployment_context(row: Deployment) -> dict:
    return work_context(row, "tlsconfig:deployment_progress", deployment=row)


@require_role(Role.VIEWER)
@require_GET
def deployment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(Deployment.objects.select_related("server", "server_certificate", "build"), pk=pk)
    return render_page(request, "tlsconfig/deployment.html", deployment_context(row), section="tls")


@require_role(Role.VIEWER)
@require_GET
def deployment_progress(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(Deployment.objects.select_related("server", "build"), pk=pk)
    return render_progress(request, "tlsconfig/_deployment_result.html", row, deployment_context(row))


def _probe_message_row(request: HttpRequest, mail_server) -> AgentRequest | None:
    """The probe message the page was sent back to follow (?message=<pk>), if it is this server's."""
    pk = request.GET.get("message", "")
    if not pk.isdigit():
        return None
    return AgentRequest.objects.filter(pk=int(pk), server=mail_server, kind="probe message").first()


@require_role(Role.VIEWER)
@require_GET
def probe_page(request: HttpRequest, server: str) -> HttpResponse:
    """What a peer sees: every visit asks the host's agent for a fresh probe, shown when it answers."""
    mail_server = get_server(server)
    with_client = request.GET.get("client") == "1"
    asked = requests.ask(mail_server, "starttls probe", {"client": with_client}, request=request)
    message = _probe_message_row(request, mail_server)
    context = {
        "server": mail_server,
        "with_client": with_client,
        "probe": requests.request_context(asked, PROBE_TEMPLATE),
        "message": requests.request_context(message, PROBE_MESSAGE_TEMPLATE) if message else None,
    }
    return render_page(request, "tlsconfig/probe.html", context, section="tls")


@require_role(Role.VIEWER)
@require_GET
def dashboard_panel(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    context = {"server": mail_server, "warnings": jobs.expiry_warnings(mail_server)}
    return render(request, "tlsconfig/_dashboard_panel.html", context)


@require_role(Role.ADMINISTRATOR)
@require_POST
def probe_message(request: HttpRequest, server: str) -> HttpResponse:
    """Ask the host's agent to send one message over STARTTLS, read what sendmail recorded in its
    Received header and remove it; the probe page follows the request."""
    mail_server = get_server(server)
    with_client = request.POST.get("client") == "1"
    asked = requests.ask(mail_server, "probe message", {"client": with_client}, request=request)
    query = {"client": "1"} if with_client else {}
    return redirect(
        reverse("tlsconfig:probe", args=[mail_server.name]) + "?" + urlencode(query | {"message": asked.pk})
    )
