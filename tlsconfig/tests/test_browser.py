"""Upload in headless Chromium: CA, certificate and key; parsed facts shown; the key never comes back."""

from __future__ import annotations

import pytest

from testing.browser import SCREENSHOTS, log_in
from testing.pki import encrypted_pem, pem

pytestmark = pytest.mark.browser


def pem_file(name: str, data: bytes) -> dict:
    return {"name": name, "mimeType": "application/x-pem-file", "buffer": data}


def test_upload_certificate_key_and_ca_in_the_browser(page, live_server, administrator, store_server, material):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    key_pem = encrypted_pem(material.server_key, "browser phrase")
    plain_key_body = pem(material.server_key).decode().splitlines()[5]
    bodies: list[tuple[str, str]] = []

    pending = []
    page.on("response", lambda response: pending.append(response))

    def read_bodies() -> None:
        """Every text response of the page just loaded (bodies are gone after the next navigation)."""
        page.wait_for_load_state("networkidle")
        for response in pending:
            if "text" in response.headers.get("content-type", "") and response.status not in (301, 302):
                bodies.append((response.url, response.text()))
        pending.clear()

    log_in(page, live_server, administrator)
    page.wait_for_load_state("networkidle")
    pending.clear()  # the login pages, gone by now and holding nothing of the store
    base = f"{live_server.url}/servers/{store_server.name}/tls"

    page.goto(f"{base}/upload/")
    read_bodies()
    page.select_option("select[name=kind]", "ca")
    page.set_input_files("input[name=file]", pem_file("ca.pem", pem(material.ca)))
    page.click("#upload-form [type=submit]")
    page.wait_for_load_state()
    assert "Test CA" in page.inner_text("#certificate-facts")
    read_bodies()

    page.goto(f"{base}/upload/")
    read_bodies()
    page.select_option("select[name=kind]", "server")
    page.set_input_files("input[name=file]", pem_file("../../server.pem", pem(material.server)))
    page.set_input_files("input[name=key_file]", pem_file("server.key", key_pem))
    page.fill("input[name=passphrase]", "wrong phrase")
    page.select_option("select[name=ca]", label=page.locator("select[name=ca] option").nth(1).inner_text())
    page.click("#upload-form [type=submit]")
    page.wait_for_load_state()
    assert "The passphrase is wrong" in page.inner_text("#upload-error")
    read_bodies()
    page.screenshot(path=str(SCREENSHOTS / "tls-upload-error.png"), full_page=True)

    page.select_option("select[name=kind]", "server")
    page.set_input_files("input[name=file]", pem_file("server.pem", pem(material.server)))
    page.set_input_files("input[name=key_file]", pem_file("server.key", key_pem))
    page.fill("input[name=passphrase]", "browser phrase")
    page.select_option("select[name=ca]", index=1)
    page.click("#upload-form [type=submit]")
    page.wait_for_load_state()
    facts = page.inner_text("#certificate-facts")
    assert "CN=mx.example.org" in facts and "DNS:mx.example.org" in facts
    assert "RSA 2048" in facts and "stored encrypted (never shown)" in facts
    assert f"by {administrator.username} on" in page.inner_text("main")
    page.screenshot(path=str(SCREENSHOTS / "tls-certificate.png"), full_page=True)
    read_bodies()

    page.goto(f"{base}/")
    page.wait_for_load_state("networkidle")
    assert "mx.example.org" in page.inner_text("#tls-store")
    page.screenshot(path=str(SCREENSHOTS / "tls-overview.png"), full_page=True)
    read_bodies()
    page.goto(f"{base}/panel/")
    read_bodies()

    assert len(bodies) >= 6
    for url, body in bodies:
        assert "PRIVATE KEY" not in body, url
        assert plain_key_body not in body, url
        assert key_pem.decode().splitlines()[3] not in body, url


def test_a_generation_job_shows_its_progress_and_result(page, live_server, administrator, store_server, monkeypatch):
    from mailadmin import work
    from tlsconfig import tasks
    from tlsconfig.models import TlsJob

    monkeypatch.setattr(work, "publish", lambda item: False)  # no broker here: the row waits, as in an outage
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log_in(page, live_server, administrator)
    page.goto(f"{live_server.url}/servers/{store_server.name}/tls/")
    page.select_option("#generate-form select[name=kind]", "ca")
    page.fill("#generate-form input[name=common_name]", "Browser CA")
    page.click("#generate-form [type=submit]")
    page.wait_for_load_state()
    assert "will run when a worker is available" in page.inner_text("#job-result")
    page.screenshot(path=str(SCREENSHOTS / "tls-job-queued.png"), full_page=True)

    tasks.run_tls_job(TlsJob.objects.get().pk)

    page.wait_for_selector("#job-result a[href*='/tls/certificates/']", timeout=10000)
    assert "Browser CA" in page.inner_text("#job-result")
    page.screenshot(path=str(SCREENSHOTS / "tls-job-done.png"), full_page=True)
