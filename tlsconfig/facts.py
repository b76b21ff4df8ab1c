"""What the installed cf and the running daemon say about TLS, read without changing anything."""

from __future__ import annotations

import os
import smtplib
import stat
from dataclasses import dataclass, field

from mailadmin.overview import InstalledCf

TLS_OPTION_NAMES = (
    "CACertFile",
    "CACertPath",
    "ServerCertFile",
    "ServerKeyFile",
    "ClientCertFile",
    "ClientKeyFile",
    "CRLFile",
    "DHParameters",
    "Timeout.starttls",
    "TLSSrvOptions",
)
PRIVATE_KEY_OPTIONS = frozenset({"ServerKeyFile", "ClientKeyFile"})
PATH_OPTIONS = (
    frozenset({"CACertFile", "CACertPath", "ServerCertFile", "CRLFile", "DHParameters"}) | PRIVATE_KEY_OPTIONS
)

# The name the console gives itself in EHLO; it never relays, so any syntactically valid name will do.
EHLO_NAME = "mailadmin.localhost"


@dataclass(frozen=True)
class PathFacts:
    path: str
    exists: bool = False
    is_dir: bool = False
    mode: str = ""
    problem: str = ""


def path_facts(path: str, *, private_key: bool = False) -> PathFacts:
    try:
        info = os.stat(path)
    except OSError as exc:
        return PathFacts(path=path, problem=exc.strerror or str(exc))
    mode = stat.S_IMODE(info.st_mode)
    problem = ""
    if private_key and mode & 0o077:
        # sendmail starts fine with such a key and silently stops offering STARTTLS (only its log says why).
        problem = "readable by group or others: sendmail will not offer STARTTLS with this key"
    return PathFacts(path=path, exists=True, is_dir=stat.S_ISDIR(info.st_mode), mode=f"{mode:04o}", problem=problem)


@dataclass(frozen=True)
class TlsOption:
    name: str
    value: str
    is_set: bool
    default: str
    file: PathFacts | None = None


def tls_options(cf: InstalledCf) -> list[TlsOption]:
    """The TLS options of the cf; a commented `#O Name=value` line means unset, with sendmail's default shown."""
    active = {option.name: option.value for option in cf.active_options}
    defaults = {option.name: option.value for option in cf.default_options}
    options = []
    for name in TLS_OPTION_NAMES:
        value = active.get(name, "")
        file = None
        if name in active and name in PATH_OPTIONS and value.startswith("/"):
            file = path_facts(value, private_key=name in PRIVATE_KEY_OPTIONS)
        options.append(TlsOption(name, value, name in active, defaults.get(name, ""), file))
    return options


@dataclass(frozen=True)
class EhloReply:
    greeting: str = ""
    hello: str = ""
    extensions: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def starttls(self) -> bool:
        return any(line.split()[0].upper() == "STARTTLS" for line in self.extensions if line.strip())


def ehlo(address: str, port: int, timeout: float = 5.0) -> EhloReply:
    """Connect to the daemon, say EHLO and list the extensions it advertises."""
    smtp = smtplib.SMTP(local_hostname=EHLO_NAME, timeout=timeout)
    try:
        code, greeting = smtp.connect(address, port)
        if code != 220:
            return EhloReply(error=f"the daemon greeted with {code} {greeting.decode('utf-8', 'replace')}")
        code, reply = smtp.ehlo()
        lines = reply.decode("utf-8", "replace").splitlines()
        if code != 250:
            return EhloReply(error=f"EHLO answered {code} {' '.join(lines)}")
        return EhloReply(
            greeting=f"220 {greeting.decode('utf-8', 'replace')}",
            hello=lines[0] if lines else "",
            extensions=lines[1:],
        )
    except (OSError, smtplib.SMTPException) as exc:
        return EhloReply(error=getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
