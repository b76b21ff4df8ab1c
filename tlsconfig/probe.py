"""What a peer sees: connect to the instance, EHLO, STARTTLS, handshake — reported in sendmail's macro terms.

The handshake is verified by OpenSSL itself against the CA the instance trusts (its CACertFile);
when that fails, a second, non-verifying handshake still reads the certificate so the page can
show what was served.

Agent side: this module connects to the daemon and reads the installed cf, the key files, the
log and the spool, so only the host's agent runs it (tlsconfig/agentside.py answers the pages'
"starttls probe" and "probe message" requests with it). Its results travel as JSON-able dicts
(`report`, `ProbeResult.to_dict` / `from_dict`).
"""

from __future__ import annotations

import fcntl
import os
import re
import smtplib
import ssl
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path

from cryptography import x509

from mailadmin import audit
from mailadmin.models import AuditEvent, MailServer
from mailadmin.mta import agent, snapshot, spool, tlsfacts
from mailadmin.mta.tlsfacts import EHLO_NAME
from mailadmin.overview import InstalledCf
from tlsconfig import pki

# How far back in the daemon's log sendmail's own STARTTLS complaints are looked for.
COMPLAINT_LOG_LINES = 400


@dataclass
class ProbeResult:
    greeting: str = ""
    extensions: list[str] = field(default_factory=list)
    starttls_offered: bool = False
    starttls_reply: str = ""
    starttls_code: int | None = None
    tls_version: str = ""
    cipher: str = ""
    cipher_bits: int | None = None
    served: pki.CertificateFacts | None = None
    verify: str = ""
    verify_detail: str = ""
    client_certificate: str = ""
    error: str = ""

    @property
    def macros(self) -> list[tuple[str, str]]:
        served = self.served
        return [
            ("${tls_version}", self.tls_version),
            ("${cipher}", self.cipher),
            ("${cipher_bits}", "" if self.cipher_bits is None else str(self.cipher_bits)),
            ("${cert_subject}", served.subject if served else ""),
            ("${cert_issuer}", served.issuer if served else ""),
            ("${cn_subject}", served.cn_subject if served else ""),
            ("${cn_issuer}", served.cn_issuer if served else ""),
            ("${verify}", self.verify),
        ]

    def to_dict(self) -> dict:
        """JSON-able: the served certificate's dates as ISO 8601 text, and the macros as the page shows them."""
        data = asdict(self)
        if self.served is not None:
            data["served"] |= {
                "not_before": self.served.not_before.isoformat(),
                "not_after": self.served.not_after.isoformat(),
            }
        data["macros"] = [list(pair) for pair in self.macros]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ProbeResult:
        known = {f.name for f in fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        served = values.get("served")
        if served is not None:
            dates = {name: datetime.fromisoformat(served[name]) for name in ("not_before", "not_after")}
            values["served"] = pki.CertificateFacts(**(served | dates))
        return cls(**values)


def client_context(ca_file: str | None, client_pair: tuple[str, str] | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # sendmail itself checks the chain, not the host name; the page reports the names separately.
    context.check_hostname = False
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    if client_pair:
        context.load_cert_chain(*client_pair)
    return context


def handshake(
    address: str, port: int, context: ssl.SSLContext, server_name: str, result: ProbeResult, timeout: float
) -> None:
    """One SMTP session up to and through STARTTLS; fills `result`. ssl errors propagate to the caller."""
    smtp = smtplib.SMTP(local_hostname=EHLO_NAME, timeout=timeout)
    try:
        code, greeting = smtp.connect(address, port)
        result.greeting = f"{code} {greeting.decode('utf-8', 'replace')}"
        smtp.ehlo()
        result.extensions = (smtp.ehlo_resp or b"").decode("utf-8", "replace").splitlines()[1:]
        result.starttls_offered = smtp.has_extn("starttls")
        if not result.starttls_offered:
            return
        code, reply = smtp.docmd("STARTTLS")
        result.starttls_code = code
        result.starttls_reply = f"{code} {reply.decode('utf-8', 'replace')}"
        if code != 220:
            return
        tls = context.wrap_socket(smtp.sock, server_hostname=server_name)
        smtp.sock, smtp.file = tls, None
        result.tls_version = tls.version() or ""
        name, _, bits = tls.cipher() or ("", "", None)
        result.cipher, result.cipher_bits = name, bits
        der = tls.getpeercert(binary_form=True)
        if der:
            result.served = pki.certificate_facts(x509.load_der_x509_certificate(der))
        smtp.ehlo()
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def probe(
    address: str,
    port: int,
    *,
    server_name: str,
    ca_file: str | None,
    client_pair: tuple[str, str] | None = None,
    timeout: float = 10.0,
) -> ProbeResult:
    result = ProbeResult()
    try:
        handshake(address, port, client_context(ca_file, client_pair), server_name, result, timeout)
        if result.served:
            result.verify = "OK" if ca_file else "NONE"
            result.verify_detail = "" if ca_file else "no CA to verify against (CACertFile is not set)"
    except ssl.SSLCertVerificationError as exc:
        result = ProbeResult(verify="FAIL", verify_detail=exc.verify_message or str(exc))
        try:
            handshake(address, port, client_context(None, client_pair), server_name, result, timeout)
        except (OSError, smtplib.SMTPException) as again:
            result.error = str(again)
    except ssl.SSLError as exc:
        result.verify, result.error = "PROTOCOL", f"TLS handshake failed: {exc.reason or exc}"
    except (OSError, smtplib.SMTPException) as exc:
        if result.starttls_code == 220:
            result.verify = "TEMP"
        result.error = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if client_pair:
        result.client_certificate = client_pair[0]
    return result


@dataclass
class ServedVersusDeployed:
    deployed_path: str = ""
    deployed_sha256: str = ""
    served_sha256: str = ""
    problem: str = ""

    @property
    def same(self) -> bool:
        return bool(self.deployed_sha256) and self.deployed_sha256 == self.served_sha256


def installed_cf(server: MailServer) -> InstalledCf:
    """The cf the daemon runs on, read from the host now (not from the last snapshot)."""
    return snapshot.installed_cf(server.cf_path)[0]


def compare_with_deployed(cf: InstalledCf, result: ProbeResult) -> ServedVersusDeployed:
    options = {option.name: option.value for option in cf.active_options}
    path = options.get("ServerCertFile", "")
    comparison = ServedVersusDeployed(deployed_path=path, served_sha256=result.served.sha256 if result.served else "")
    if not path:
        comparison.problem = "The installed cf sets no ServerCertFile."
        return comparison
    try:
        deployed = pki.load_certificates(Path(path).read_bytes())[0]
    except (OSError, pki.PkiError) as exc:
        comparison.problem = f"The certificate file {path} cannot be read: {exc}"
        return comparison
    comparison.deployed_sha256 = pki.certificate_facts(deployed).sha256
    if result.served and not comparison.same:
        comparison.problem = (
            "The daemon is still serving the old certificate: the one on disk is different. "
            "sendmail reads its certificate at start-up; reload or restart it."
        )
    return comparison


def daemon_complaints(server: MailServer, lines: int = 8) -> list[str]:
    """sendmail's own STARTTLS lines from its log (e.g. `unsafe: Group readable file`)."""
    tail = snapshot.log_tail(server.log_file, server.syslog_tag, lines=COMPLAINT_LOG_LINES)
    return [line for line in tail.lines if "STARTTLS" in line or "TLS" in line.split(":", 3)[-1]][-lines:]


def probe_server(server: MailServer, *, with_client_certificate: bool = False) -> dict:
    """The live probe and what it is compared with (the installed cf, key files, the daemon's log)."""
    server = agent.bind(server)
    cf = installed_cf(server)
    options = {option.name: option.value for option in cf.active_options}
    ca_file = options.get("CACertFile") or None
    if ca_file and not Path(ca_file).is_file():
        ca_file = None
    client_pair = None
    if with_client_certificate and options.get("ClientCertFile") and options.get("ClientKeyFile"):
        client_pair = (options["ClientCertFile"], options["ClientKeyFile"])
    result = probe(
        server.smtp_address, server.smtp_port, server_name=server.hostname, ca_file=ca_file, client_pair=client_pair
    )
    return {
        "result": result,
        "ca_file": ca_file or "",
        "comparison": compare_with_deployed(cf, result) if cf.exists else None,
        "key_problems": tlsfacts.key_problems({o.name: o.value for o in cf.active_options}) if cf.exists else [],
        "complaints": daemon_complaints(server),
    }


def report(seen: dict) -> dict:
    """probe_server's outcome as a JSON-able dict (an AgentRequest's result, rendered by the probe page)."""
    comparison = seen["comparison"]
    return {
        "result": seen["result"].to_dict(),
        "ca_file": seen["ca_file"],
        "comparison": None if comparison is None else asdict(comparison) | {"same": comparison.same},
        "key_problems": list(seen["key_problems"]),
        "complaints": list(seen["complaints"]),
    }


# --- The probe message: what sendmail itself recorded about the TLS session -------------------------

RECEIVED_LINE = re.compile(r"H(\?[^?]*\?)?Received:")
RECEIVED_TLS = re.compile(r"\(version=(\S+) cipher=(\S+) bits=(\S+) verify=(\S+)\)")
QUEUE_ID_REPLY = re.compile(r"\b([0-9A-Za-z]{8}[0-9]{5,10})\b")
LOCK_ATTEMPTS = 20


@dataclass
class MessageProbe:
    queue_id: str = ""
    received: str = ""
    recorded: dict[str, str] = field(default_factory=dict)
    removed: bool = False
    error: str = ""


def send_probe_message(
    server: MailServer, context: ssl.SSLContext, recipient: str, timeout: float = 10.0
) -> tuple[str, str]:
    """One message over STARTTLS; returns (queue id, the server's reply to DATA)."""
    smtp = smtplib.SMTP(server.smtp_address, server.smtp_port, local_hostname=EHLO_NAME, timeout=timeout)
    try:
        smtp.starttls(context=context)
        smtp.ehlo()
        body = (
            f"From: mailadmin probe <postmaster@{server.hostname}>\r\nTo: <{recipient}>\r\n"
            "Subject: mailadmin STARTTLS probe\r\n\r\nRemoved by the console as soon as it is read.\r\n"
        )
        smtp.mail(f"postmaster@{server.hostname}")
        code, reply = smtp.rcpt(recipient)
        if code >= 400:
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        code, reply = smtp.data(body.encode())
        text = reply.decode("utf-8", "replace")
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
    found = QUEUE_ID_REPLY.search(text.replace("2.0.0", ""))
    if not found:
        raise smtplib.SMTPResponseException(code, f"no queue id in the reply: {text}".encode())
    return found.group(1), text


def queue_file(server: MailServer, prefix: str, queue_id: str) -> Path | None:
    for directory in spool.queue_directories(server.queue_dir):
        for candidate in (Path(directory) / f"{prefix}{queue_id}", Path(directory) / prefix / f"{prefix}{queue_id}"):
            if candidate.exists():
                return candidate
    return None


def read_queue_file(path: Path, limit: int = 1 << 20) -> bytes:
    """The start of a queue file, never through a symbolic link (a probe's qf is a few KiB)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def received_header(qf_bytes: bytes) -> str:
    """The first Received: header of a qf file (H line plus its TAB continuation lines), unfolded."""
    lines = qf_bytes.decode("latin-1").split("\n")
    for index, line in enumerate(lines):
        if RECEIVED_LINE.match(line):
            parts = [line.split("Received:", 1)[1]]
            for follow in lines[index + 1 :]:
                if not follow.startswith("\t"):
                    break
                parts.append(follow.strip())
            return " ".join(part.strip() for part in parts)
    return ""


def remove_queued(qf: Path, df: Path | None) -> bool:
    """Delete the probe's qf/df under sendmail's own lock (flock), so a queue run never sees half of it."""
    for _ in range(LOCK_ATTEMPTS):
        fd = os.open(qf, os.O_RDWR | os.O_NOFOLLOW)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                time.sleep(0.1)
                continue
            qf.unlink()
            if df is not None:
                df.unlink(missing_ok=True)
            return True
        finally:
            os.close(fd)
    return False


def probe_message(server: MailServer, *, with_client_certificate: bool, user=None) -> MessageProbe:
    server = agent.bind(server)
    options = {option.name: option.value for option in installed_cf(server).active_options}
    ca_file = options.get("CACertFile") if Path(options.get("CACertFile", "/nonexistent")).is_file() else None
    client_pair = None
    if with_client_certificate and options.get("ClientCertFile") and options.get("ClientKeyFile"):
        client_pair = (options["ClientCertFile"], options["ClientKeyFile"])
    outcome = MessageProbe()
    try:
        outcome.queue_id, _ = send_probe_message(
            server, client_context(ca_file, client_pair), f"postmaster@{server.hostname}"
        )
    except (OSError, ValueError, smtplib.SMTPException) as exc:
        outcome.error = f"The probe message was not accepted: {exc}"
        return outcome
    qf = queue_file(server, "qf", outcome.queue_id)
    if qf is None:
        outcome.error = f"{outcome.queue_id} is not in the queue directory (was it delivered at once?)"
        return outcome
    outcome.received = received_header(read_queue_file(qf))
    found = RECEIVED_TLS.search(outcome.received)
    if found:
        outcome.recorded = dict(
            zip(("${tls_version}", "${cipher}", "${cipher_bits}", "${verify}"), found.groups(), strict=True)
        )
    outcome.removed = remove_queued(qf, queue_file(server, "df", outcome.queue_id))
    if not outcome.removed:
        outcome.error = f"{outcome.queue_id} stayed locked by sendmail; it is still in the queue."
    audit.record(
        "TLS probe message",
        user=user,
        server=server,
        target=outcome.queue_id,
        outcome=AuditEvent.Outcome.OK if outcome.removed else AuditEvent.Outcome.FAILED,
        detail=outcome.received,
    )
    return outcome
