"""TLS_Rcpt rows set in the console, proven on the wire: sendmail's own tls_rcpt refuses a recipient
whose MTA's certificate does not verify, and sends the others.

The sending instance is this module's own; its queue runs relay to [127.0.0.5] port 2 instead of
the usual [127.0.0.2], so the receiving MTA here never takes mail another test's instance relays.
That receiver is a small STARTTLS server in this process (a self-signed certificate the sender has
no CA for, so sendmail's ${verify} is FAIL): it records what sendmail says to it, over TLS or not.
"""

from __future__ import annotations

import itertools
import re
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from mailadmin import config, tasks
from mailadmin.cf import accessmap
from mailadmin.models import ConfigBuild, InstallJob
from mailadmin.mta import daemon, instance
from mailadmin.mta.gateway import Mta
from mailadmin.work import WorkStatus
from mailqueue.models import QueueAction
from mailqueue.parser import parse_queue_file
from testing.instances import instance_row, start_instance, stop_instance
from testing.queue import Submitter, run_action
from testing.smtp import STRANGER
from tlsconfig import generate, pki

RECEIVER = "127.0.0.5"
RECEIVER_NAME = "mx.untrusted.example"
# The receiver's issuer DN as sendmail holds it in ${cert_issuer}: spaces as +20 (cf/README "Relaying").
ISSUER = "/O=Example+20Test/CN=Untrusted+20CA"


@dataclass
class Session:
    commands: list[str] = field(default_factory=list)
    tls_commands: list[str] = field(default_factory=list)


class StartTlsReceiver:
    """An SMTP server that offers STARTTLS with a certificate nobody trusts and accepts every message."""

    def __init__(self, address: str, port: int, cert_dir: Path):
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca = generate.make_ca(ca_key, "Untrusted CA", 2, "Example Test")  # the sender has no CA certificates
        leaf = generate.issue(ca, ca_key, key.public_key(), RECEIVER_NAME, [RECEIVER_NAME], 2, client=False)
        (cert_dir / "cert.pem").write_text(pki.certificate_pem(leaf) + pki.certificate_pem(ca))
        (cert_dir / "key.pem").write_bytes(pki.private_key_pem(key))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_dir / "cert.pem", cert_dir / "key.pem")
        self.listener = socket.create_server((address, port))
        self.listener.settimeout(0.2)
        self.sessions: list[Session] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        self.listener.close()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            session = Session()
            self.sessions.append(session)
            threading.Thread(target=self._talk, args=(conn, session), daemon=True).start()

    def _talk(self, conn: socket.socket, session: Session) -> None:
        conn.settimeout(30)
        stream, log, tls = conn, session.commands, False
        try:
            reader = stream.makefile("rb")
            stream.sendall(f"220 {RECEIVER_NAME} ESMTP test receiver\r\n".encode())
            while True:
                line = reader.readline()
                if not line:
                    return
                command = line.decode(errors="replace").rstrip("\r\n")
                log.append(command)
                verb = command[:4].upper()
                if verb == "EHLO":
                    offer = "" if tls else "250-STARTTLS\r\n"
                    stream.sendall(f"250-{RECEIVER_NAME}\r\n{offer}250 8BITMIME\r\n".encode())
                elif verb == "STAR" and not tls:
                    stream.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                    stream = self.context.wrap_socket(conn, server_side=True)
                    reader, log, tls = stream.makefile("rb"), session.tls_commands, True
                elif verb == "DATA":
                    stream.sendall(b"354 go ahead\r\n")
                    while reader.readline() not in (b".\r\n", b".\n", b""):
                        pass
                    stream.sendall(b"250 2.0.0 accepted\r\n")
                elif verb == "QUIT":
                    stream.sendall(b"221 2.0.0 bye\r\n")
                    return
                else:
                    stream.sendall(b"250 2.0.0 ok\r\n")
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()


@pytest.fixture(scope="module")
def sender_instance(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        fields = start_instance(defer_relay=f"[{RECEIVER}]")
    yield fields
    with django_db_blocker.unblock():
        stop_instance(fields)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    server = StartTlsReceiver(RECEIVER, instance.DEFER_PORT, tmp_path_factory.mktemp("receiver"))
    yield server
    server.stop()


BUILDS = itertools.count()


@pytest.fixture
def console(db, sender_instance, administrator, client):
    server = instance_row(sender_instance)
    # Each test's rows are rolled back, so its first build would be b1 again: the daemon already
    # greets with b1 (an earlier test's), and installing a build whose cf is live changes nothing.
    # Rows that are rolled back too move the ids on: each test's build gets an id of its own.
    for _ in range(next(BUILDS) * 3):
        ConfigBuild.objects.create(server=server, mc_text="dnl\n")
    config.import_mc(server, Path(server.mc_path).read_text())
    config.import_access(server, Path(server.access_path).read_text())
    server.access_entries.exclude(tag="Connect").delete()  # an earlier test's rows, still installed
    client.force_login(administrator)
    return server, client


def post(client, path: str, data: dict) -> None:
    response = client.post(path, data)
    assert response.status_code == 302, response.content[:500]
    follow = client.get(response["Location"])
    errors = [m.message for m in follow.context["messages"] if m.level_tag == "error"] if follow.context else []
    assert not errors, errors


def build_and_install(server, client) -> ConfigBuild:
    post(client, f"/servers/{server.name}/builds/", {})
    build = ConfigBuild.objects.latest("pk")
    tasks.run_config_build(build.pk)
    build.refresh_from_db()
    assert build.status == WorkStatus.DONE, build.error
    post(client, f"/builds/{build.pk}/install/", {})
    job = InstallJob.objects.latest("pk")
    tasks.run_install(job.pk)
    job.refresh_from_db()
    assert job.status == WorkStatus.DONE, job.error
    assert f"/{build.build_id};" in daemon.status(server).banner
    return build


def queue_run_transcript(server, queue_id: str) -> str:
    """sendmail's own words for one queue run of the message (-v: the SMTP dialogue and each recipient's fate)."""
    return Mta(server).sendmail("-v", f"-qI{queue_id}", action="queue run").stdout_text


def recipients_said(receiver, *, over_tls: bool) -> list[str]:
    return [
        c
        for s in receiver.sessions
        for c in (s.tls_commands if over_tls else s.commands)
        if c.upper().startswith("RCPT TO:")
    ]


def test_a_recipient_whose_tls_rcpt_row_requires_verify_stays_queued_with_sendmails_refusal(console, receiver):
    server, client = console
    post(client, f"/servers/{server.name}/access/add/", {"tag": "TLS_Rcpt", "key": "secure.example", "value": "verify"})
    build = build_and_install(server, client)
    assert "TLS_Rcpt:secure.example\tVERIFY\n" in build.access_text
    assert accessmap.parse_lookup(Mta(server).map_lookup("access", "TLS_Rcpt:secure.example").stdout_text) == "VERIFY"
    receiver.sessions.clear()

    (queue_id,) = Submitter(server).send(recipients=("alice@secure.example", "bob@plain.example"))
    run_action(server, QueueAction.Verb.DELIVER, queue_ids=[queue_id])

    # STARTTLS happened (the certificate did not verify), bob went over it, alice never reached the wire.
    assert recipients_said(receiver, over_tls=True) == ["RCPT To:<bob@plain.example>"]
    assert recipients_said(receiver, over_tls=False) == []
    qf = Path(server.queue_dir) / f"qf{queue_id}"
    assert qf.exists(), "the message left the queue"
    queued = parse_queue_file(qf.read_bytes())
    assert [r.address for r in queued.recipients] == ["<alice@secure.example>"]
    assert queued.status_message == "authentication failed"  # TLS_connection: VERIFY required, ${verify} FAIL
    listing = Mta(server).sendmail("-bp", action="list queue").stdout_text
    assert queue_id in listing and "(authentication failed)" in listing and "<alice@secure.example>" in listing

    # The same refusal in sendmail's words: the tls_rcpt rule set itself, and the queue run's dialogue.
    traced = Mta(server).sendmail("-bt", stdin=b".D{verify}FAIL\ntls_rcpt alice@secure.example\n").stdout_text
    assert 'tls_rcpt         returns: $# error $@ 4 . 7 . 0 $: 454 " authentication failed"' in traced, traced
    transcript = queue_run_transcript(server, queue_id)
    assert ">>> STARTTLS" in transcript and "authentication failed\n<alice@secure.example>... Deferred" in transcript
    assert "RCPT To:<alice@secure.example>" not in transcript
    assert qf.exists()


# Requirement forms, a recipient domain each: (domain, value, sendmail's refusal or None: sent). The
# receiver's certificate: CN mx.untrusted.example, issued by /O=Example Test/CN=Untrusted CA.
FORMS = [
    ("encr.example", "ENCR:128", None),
    ("weak.example", "ENCR:9999", r"encryption too weak \d+ less than 9999"),
    ("cn.example", f"ENCR:128+CN:{RECEIVER_NAME}", None),
    ("wrong-cn.example", "encr:128+cn:other.example", f"CN {re.escape(RECEIVER_NAME)} does not match other.example"),
    ("subject.example", f"ENCR:128+CS:/CN={RECEIVER_NAME}++CI:{ISSUER}", None),
    (
        "issuer.example",
        "ENCR:128+CI:/O=Example+20Test/CN=Other+20CA",
        re.escape(f"Cert Issuer {ISSUER} does not match /O=Example+20Test/CN=Other+20CA"),
    ),
]


def test_each_requirement_form_is_read_by_sendmail_as_cf_readme_describes_it(console, receiver):
    server, client = console
    for domain, value, _ in FORMS:
        post(client, f"/servers/{server.name}/access/add/", {"tag": "TLS_Rcpt", "key": domain, "value": value})
    build_and_install(server, client)
    receiver.sessions.clear()

    (queue_id,) = Submitter(server).send(recipients=tuple(f"user@{domain}" for domain, _, _ in FORMS))
    transcript = queue_run_transcript(server, queue_id)

    sent = {c.split("@", 1)[1].rstrip(">") for c in recipients_said(receiver, over_tls=True)}
    assert sent == {domain for domain, _, refusal in FORMS if refusal is None}, transcript
    for domain, _, refusal in FORMS:
        if refusal:
            assert re.search(rf"^{refusal}\n<user@{re.escape(domain)}>\.\.\. Deferred$", transcript, re.M), domain
    qf = Path(server.queue_dir) / f"qf{queue_id}"
    left = {r.address for r in parse_queue_file(qf.read_bytes()).recipients}
    assert left == {f"<user@{domain}>" for domain, _, refusal in FORMS if refusal}


def test_a_perm_requirement_bounces_the_recipient_instead_of_keeping_it_queued(console, receiver):
    server, client = console
    post(
        client,
        f"/servers/{server.name}/access/add/",
        {"tag": "TLS_Rcpt", "key": "perm.example", "value": "PERM+VERIFY"},
    )
    build_and_install(server, client)
    receiver.sessions.clear()

    (queue_id,) = Submitter(server).send(recipients=("dave@perm.example",))
    transcript = Mta(server).sendmail("-v", f"-qI{queue_id}", action="queue run", ok_codes=(0, 65)).stdout_text

    assert "authentication failed\nData format error\n" in transcript
    assert "<dave@perm.example>... Deferred" not in transcript
    assert not (Path(server.queue_dir) / f"qf{queue_id}").exists()
    assert recipients_said(receiver, over_tls=True) == ["RCPT To:<alice@client.example>"]  # the bounce, not dave


def test_after_a_perm_refusal_sendmail_bounces_the_messages_temporary_refusals_too(console, receiver):
    """sendmail 8.17.1: once a PERM+ row refused one recipient, the TLS_Rcpt refusals after it in the
    same delivery are permanent as well (the access page says so next to PERM+)."""
    server, client = console
    for domain, value in (("perm.example", "PERM+VERIFY"), ("weak.example", "ENCR:9999"), ("encr.example", "ENCR:128")):
        post(client, f"/servers/{server.name}/access/add/", {"tag": "TLS_Rcpt", "key": domain, "value": value})
    build_and_install(server, client)
    receiver.sessions.clear()

    # sendmail takes the recipients in the reverse order: perm.example first.
    (queue_id,) = Submitter(server).send(recipients=("c@encr.example", "b@weak.example", "a@perm.example"))
    transcript = Mta(server).sendmail("-v", f"-qI{queue_id}", action="queue run", ok_codes=(0, 65)).stdout_text

    assert transcript.index("authentication failed") < transcript.index("encryption too weak")
    assert re.search(r"^encryption too weak \d+ less than 9999\nData format error$", transcript, re.M), transcript
    assert "<b@weak.example>... Deferred" not in transcript
    assert not (Path(server.queue_dir) / f"qf{queue_id}").exists()
    assert recipients_said(receiver, over_tls=True)[0] == "RCPT To:<c@encr.example>"


def test_srv_features_rows_change_what_the_daemon_offers_one_client(console):
    server, client = console
    post(client, f"/servers/{server.name}/access/add/", {"tag": "Srv_Features", "key": STRANGER, "value": "P D"})
    build_and_install(server, client)

    def offered(source: str) -> set[str]:
        with smtplib.SMTP(server.smtp_address, server.smtp_port, timeout=30, source_address=(source, 0)) as smtp:
            smtp.ehlo("client.example")
            return set(smtp.esmtp_features)

    assert {"pipelining", "dsn"} <= offered("127.0.0.1")
    assert not {"pipelining", "dsn"} & offered(STRANGER)


def test_a_default_clt_features_row_stops_starttls_with_every_server(console, receiver):
    server, client = console
    post(client, f"/servers/{server.name}/access/add/", {"tag": "Clt_Features", "key": "", "value": "S"})
    build_and_install(server, client)
    receiver.sessions.clear()

    (queue_id,) = Submitter(server).send(recipients=("carol@plain.example",))
    run_action(server, QueueAction.Verb.DELIVER, queue_ids=[queue_id])

    assert recipients_said(receiver, over_tls=False) == ["RCPT To:<carol@plain.example>"]
    assert not any(c.upper() == "STARTTLS" for s in receiver.sessions for c in s.commands)


def test_a_keyed_clt_features_row_is_not_consulted_by_sendmail_8_17_1s_cf(console, receiver):
    """Debian 12's cf (8.17.1) looks Clt_Features up under ${client_name} and ${client_addr}, which are
    empty while sending: only the default row applies (8.17.2 looks up the server's name instead)."""
    server, client = console
    rules = Path(server.cf_path).read_text().split("Sclt_features\n", 1)[1].split("\n\n", 1)[0]
    if "$&{client_name}" not in rules:
        pytest.skip("this cf tree looks up the server's name in clt_features")
    for key in ("127.0.0.5", RECEIVER_NAME, "localhost"):
        post(client, f"/servers/{server.name}/access/add/", {"tag": "Clt_Features", "key": key, "value": "S"})
    build_and_install(server, client)
    receiver.sessions.clear()

    (queue_id,) = Submitter(server).send(recipients=("erin@plain.example",))
    run_action(server, QueueAction.Verb.DELIVER, queue_ids=[queue_id])

    assert recipients_said(receiver, over_tls=True) == ["RCPT To:<erin@plain.example>"]
