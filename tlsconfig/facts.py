"""What the installed cf and the running daemon say about TLS, as the host's agent last saw them.

Pure helpers over rows: the agent gathers the facts (mailadmin.mta.tlsfacts: modes and owners of
the certificate directory and of the files the cf names, the daemon's EHLO reply) into
HostSnapshot.tls, and these turn that dict and the snapshot's cf into what the TLS pages show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailadmin.cf.catalog import TLS_FILE_OPTIONS
from mailadmin.overview import InstalledCf

TLS_OPTION_NAMES = (*TLS_FILE_OPTIONS, "Timeout.starttls", "TLSSrvOptions")
PRIVATE_KEY_OPTIONS = frozenset({"ServerKeyFile", "ClientKeyFile"})
PATH_OPTIONS = (
    frozenset({"CACertFile", "CACertPath", "ServerCertFile", "ClientCertFile", "CRLFile", "DHParameters"})
    | PRIVATE_KEY_OPTIONS
)

NOT_REPORTED = "not reported by the host's agent yet"


@dataclass(frozen=True)
class PathFacts:
    path: str
    exists: bool = False
    is_dir: bool = False
    mode: str = ""
    owner: str = ""
    problem: str = ""

    @classmethod
    def from_snapshot(cls, path: str, data: dict | None) -> PathFacts:
        if not data:
            return cls(path=path, problem=NOT_REPORTED)
        return cls(
            path=path,
            exists=bool(data.get("exists")),
            is_dir=bool(data.get("is_dir")),
            mode=str(data.get("mode", "")),
            owner=str(data.get("owner", "")),
            problem=str(data.get("problem", "")),
        )


@dataclass(frozen=True)
class TlsOption:
    name: str
    value: str
    is_set: bool
    default: str
    file: PathFacts | None = None


def tls_options(cf: InstalledCf, tls: dict | None = None) -> list[TlsOption]:
    """The TLS options of the cf, each file one names with its facts from the snapshot's `tls`;
    a commented `#O Name=value` line means unset, with sendmail's default shown."""
    active = {option.name: option.value for option in cf.active_options}
    defaults = {option.name: option.value for option in cf.default_options}
    files = (tls or {}).get("files", {})
    options = []
    for name in TLS_OPTION_NAMES:
        value = active.get(name, "")
        file = None
        if name in active and name in PATH_OPTIONS and value.startswith("/"):
            file = PathFacts.from_snapshot(value, files.get(value))
        options.append(TlsOption(name, value, name in active, defaults.get(name, ""), file))
    return options


def cert_dir(path: str, tls: dict | None) -> PathFacts:
    return PathFacts.from_snapshot(path, (tls or {}).get("cert_dir"))


@dataclass(frozen=True)
class EhloReply:
    greeting: str = ""
    hello: str = ""
    extensions: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def starttls(self) -> bool:
        return any(line.split()[0].upper() == "STARTTLS" for line in self.extensions if line.strip())

    @classmethod
    def from_snapshot(cls, tls: dict | None) -> EhloReply:
        data = (tls or {}).get("ehlo")
        if not data:
            return cls(error=NOT_REPORTED)
        return cls(
            greeting=str(data.get("greeting", "")),
            hello=str(data.get("hello", "")),
            extensions=[str(line) for line in data.get("extensions", [])],
            error=str(data.get("error", "")),
        )


def key_problems(tls: dict | None) -> list[str]:
    """Private keys the daemon will not use (readable by group or others, missing): STARTTLS is then
    silently not offered."""
    return [str(problem) for problem in (tls or {}).get("key_problems", [])]
