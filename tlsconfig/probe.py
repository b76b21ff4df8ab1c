"""What a peer sees: connect to the instance, EHLO, STARTTLS, handshake — reported in sendmail's macro terms.

The handshake is verified by OpenSSL itself against the CA the instance trusts (its CACertFile);
when that fails, a second, non-verifying handshake still reads the certificate so the page can
show what was served.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from mailadmin import overview
from mailadmin.models import MailServer
from tlsconfig import pki
from tlsconfig.facts import EHLO_NAME, path_facts


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


def compare_with_deployed(cf: overview.InstalledCf, result: ProbeResult) -> ServedVersusDeployed:
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
    tail = overview.log_tail(server, lines=400)
    return [line for line in tail.lines if "STARTTLS" in line or "TLS" in line.split(":", 3)[-1]][-lines:]


def key_mode_problems(cf: overview.InstalledCf) -> list[str]:
    problems = []
    for option in cf.active_options:
        if option.name in ("ServerKeyFile", "ClientKeyFile") and option.value.startswith("/"):
            facts = path_facts(option.value, private_key=True)
            if facts.problem:
                problems.append(
                    f"{option.name} {option.value}: {facts.problem}" + (f" (mode {facts.mode})" if facts.mode else "")
                )
    return problems


def probe_server(server: MailServer, *, with_client_certificate: bool = False) -> dict:
    cf = overview.installed_cf(server)
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
        "key_problems": key_mode_problems(cf) if cf.exists else [],
        "complaints": daemon_complaints(server),
    }
