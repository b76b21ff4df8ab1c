"""The TLS pages never touch an MTA: probes are questions to the host's agent, answered as JSON-able rows."""

from __future__ import annotations

import json

from mailadmin import work
from mailadmin.models import AgentRequest
from testing.imports import modules_loaded_by
from tlsconfig import pki, probe

# What the web tier's TLS modules must not load, directly or through anything they import.
AGENT_SIDE = ("tlsconfig.deploy", "tlsconfig.probe", "tlsconfig.agentside", "mailadmin.mta")
WEB_MODULES = ("tlsconfig.views", "tlsconfig.forms", "tlsconfig.store", "tlsconfig.jobs", "tlsconfig.urls")


def test_the_tls_pages_import_neither_deploy_nor_probe_nor_anything_of_the_mta():
    assert modules_loaded_by(WEB_MODULES, AGENT_SIDE) == {}


def test_a_probe_result_goes_through_json_and_comes_back_equal(material):
    served = pki.certificate_facts(material.server)
    result = probe.ProbeResult(
        greeting="220 mx.example.org ESMTP",
        extensions=["STARTTLS", "PIPELINING"],
        starttls_offered=True,
        starttls_reply="220 2.0.0 Ready to start TLS",
        starttls_code=220,
        tls_version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384",
        cipher_bits=256,
        served=served,
        verify="OK",
    )

    data = json.loads(json.dumps(result.to_dict()))

    assert probe.ProbeResult.from_dict(data) == result
    assert ["${cipher}", "TLS_AES_256_GCM_SHA384"] in data["macros"] and ["${verify}", "OK"] in data["macros"]
    assert data["served"]["not_after"] == served.not_after.isoformat()


def test_the_probe_page_asks_the_agent_and_renders_its_answer_escaped(store_server, admin_client, monkeypatch):
    monkeypatch.setattr(work, "publish", lambda item: False)  # no agent serves this row's host
    url = f"/servers/{store_server.name}/tls/probe/"

    page = admin_client.get(url, {"client": "1"})

    asked = AgentRequest.objects.get(server=store_server, kind="starttls probe")
    assert asked.params == {"client": True} and asked.status == "queued"
    assert "Asked the agent on <code>mta.store</code>" in page.content.decode()

    hostile = probe.ProbeResult(greeting="220 <script>alert(1)</script>", error="<img src=x onerror=alert(2)>")
    report = {
        "result": hostile.to_dict(),
        "ca_file": "",
        "comparison": None,
        "key_problems": ["ServerKeyFile /x/<b>key</b>: readable by group or others"],
        "complaints": ["sendmail[1]: STARTTLS=server: <i>unsafe</i>"],
    }
    work.finish(asked, work.WorkStatus.DONE, result=report)
    fragment = admin_client.get(page.context["probe"]["progress_url"])

    assert fragment.status_code == 286
    html = fragment.content.decode()
    assert "<script>" not in html and "<img" not in html and "<b>key" not in html and "<i>unsafe" not in html
    assert "220 &lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;i&gt;unsafe&lt;/i&gt;" in html
    assert "presenting the client certificate" in html and "did not offer STARTTLS" in html

    sent = admin_client.post(f"/servers/{store_server.name}/tls/probe/message/", {"client": "1"})
    message = AgentRequest.objects.get(server=store_server, kind="probe message")
    assert sent["Location"] == f"{url}?client=1&message={message.pk}"
    assert admin_client.get(sent["Location"]).context["message"]["item"] == message
    other = admin_client.get(url, {"message": str(asked.pk)})  # not a probe message: not followed
    assert other.context["message"] is None
