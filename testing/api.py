"""REST API helpers for tests: tokens made the way the console makes them, a host row with no MTA
behind it, and calls that carry a token as `Authorization: Bearer <token>`."""

from __future__ import annotations

import json

from django.test import Client


def make_token(user, *scopes: str, days: int = 30, servers=(), name: str = "test") -> str:
    from api import tokens

    return tokens.create(user, name=name, scopes=list(scopes), days=days, servers=list(servers)).text


def remote_server(name: str, celery_queue: str = ""):
    """A MailServer row whose host is elsewhere (nothing on this machine answers for it)."""
    from mailadmin.models import MailServer

    return MailServer.objects.create(
        name=name,
        hostname=f"mx.{name}.example.org",
        conf_dir="/nonexistent/etc/mail",
        mc_path="/nonexistent/etc/mail/sendmail.mc",
        cf_path="/nonexistent/etc/mail/sendmail.cf",
        access_path="/nonexistent/etc/mail/access",
        cert_dir="/nonexistent/certs",
        queue_dir="/nonexistent/mqueue",
        pid_file="/nonexistent/sendmail.pid",
        sendmail_bin="/nonexistent/sendmail",
        smtp_port=9,
        celery_queue=celery_queue or f"mta.{name}",
    )


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def call(
    method: str,
    path: str,
    token: str | None = None,
    body: dict | None = None,
    client: Client | None = None,
    query: dict | None = None,
):
    """One API call from a cookieless client (or `client`), JSON in and out."""
    client = client or Client()
    headers = bearer(token) if token else {}
    if body is None:
        return getattr(client, method.lower())(path, query or {}, **headers)
    return getattr(client, method.lower())(path, json.dumps(body), content_type="application/json", **headers)
