"""Deploy: the chosen store objects become files in a new directory under the server's certificate
directory, and the TLS options point at them; a cf build then carries them to sendmail.

sendmail refuses a private key the group or others can read (it starts, and silently drops
STARTTLS), so keys are created 0600 from the first byte; no file here is wider than 0640 and
no directory is writable by anyone but its owner.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from mailadmin import config
from mailadmin.models import ConfigBuild
from mailadmin.mta import agent
from mailadmin.mta.files import write_atomically
from tlsconfig import keystore, pki
from tlsconfig.models import Certificate, Deployment

CERT_MODE = 0o640
KEY_MODE = 0o600
DIR_MODE = 0o700
HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")
CA_PATH_DIR = "cacerts"


class DeployError(Exception):
    pass


def check_directory(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise DeployError(f"The certificate directory {path} does not exist.") from None
    if not stat.S_ISDIR(info.st_mode):
        raise DeployError(f"{path} is not a directory (or is a symbolic link).")
    if info.st_mode & 0o022:
        raise DeployError(
            f"{path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}): "
            "anyone who can write there could swap sendmail's key. Make it 0700 first."
        )


def ensure_subdirectory(path: Path) -> None:
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        pass
    os.chmod(path, DIR_MODE, follow_symlinks=False)
    check_directory(path)


def hashed_names(certificates: list[Certificate]) -> dict[str, str]:
    """OpenSSL's lookup names in a CACertPath directory: <subject hash>.<n>, n counting collisions."""
    names: dict[str, str] = {}
    for certificate in certificates:
        digest = pki.openssl_subject_hash(pki.load_pem_certificate(certificate.pem).subject)
        n = 0
        while f"{digest}.{n}" in names:
            n += 1
        names[f"{digest}.{n}"] = certificate.pem
    return names


def write_ca_path(directory: Path, certificates: list[Certificate]) -> list[str]:
    ensure_subdirectory(directory)
    wanted = hashed_names(certificates)
    for name, pem in wanted.items():
        write_atomically(directory / name, pem.encode("ascii"), CERT_MODE)
    for stale in directory.iterdir():
        if HASHED_NAME.fullmatch(stale.name) and stale.name not in wanted:
            stale.unlink()
    return sorted(wanted)


def chain_of(certificate: Certificate) -> list[Certificate]:
    """The CAs above a certificate in the store, nearest first."""
    chain, current = [], certificate.issuer_ca
    while current is not None and current not in chain:
        chain.append(current)
        current = current.issuer_ca
    return chain


FILE_NAMES = {
    "ca_file": "ca.pem",
    "ca_path": CA_PATH_DIR,
    "server_cert": "server.pem",
    "server_key": "server.key",
    "client_cert": "client.pem",
    "client_key": "client.key",
    "crl": "crl.pem",
    "dh": "dh.pem",
}


def deployment_directory(row: Deployment) -> Path:
    """Each deployment writes its own directory: the files the installed cf names are never touched, so
    nothing changes for sendmail until the build is installed, and a rollback finds its files intact."""
    return Path(row.server.cert_dir) / f"deploy-{row.pk}"


def write_pair(certificate: Certificate, cert_path: Path, key_path: Path) -> None:
    if certificate.private_key is None:
        raise DeployError(f"{certificate} has no private key in the store.")
    write_atomically(key_path, keystore.reveal(certificate.private_key.ciphertext), KEY_MODE)
    write_atomically(cert_path, (certificate.pem + certificate.chain_pem).encode("ascii"), CERT_MODE)


def deploy(row: Deployment, progress: Callable[[int, str], None]) -> ConfigBuild:
    # The certificate directory is the one the host's agent configuration names, never the row's.
    server = agent.bind(row.server)
    check_directory(Path(server.cert_dir))
    directory = deployment_directory(row)
    ensure_subdirectory(directory)
    files = {key: directory / name for key, name in FILE_NAMES.items()}
    trusted = [row.ca, *chain_of(row.ca)]
    progress(10, "writing the CA certificates")
    write_atomically(files["ca_file"], "".join(c.pem for c in trusted).encode("ascii"), CERT_MODE)
    hashed = write_ca_path(files["ca_path"], trusted)
    progress(30, "writing the server certificate and key (0600)")
    write_pair(row.server_certificate, files["server_cert"], files["server_key"])
    options = {
        "CACertFile": str(files["ca_file"]),
        "CACertPath": str(files["ca_path"]),
        "ServerCertFile": str(files["server_cert"]),
        "ServerKeyFile": str(files["server_key"]),
    }
    if row.client_certificate:
        write_pair(row.client_certificate, files["client_cert"], files["client_key"])
        options |= {"ClientCertFile": str(files["client_cert"]), "ClientKeyFile": str(files["client_key"])}
    if row.crl:
        write_atomically(files["crl"], row.crl.pem.encode("ascii"), CERT_MODE)
        options["CRLFile"] = str(files["crl"])
    if row.dh_parameters:
        write_atomically(files["dh"], row.dh_parameters.pem.encode("ascii"), CERT_MODE)
        options["DHParameters"] = str(files["dh"])
    if row.timeout_starttls:
        options["Timeout.starttls"] = row.timeout_starttls
    if row.tls_srv_options:
        options["TLSSrvOptions"] = row.tls_srv_options
    progress(60, "setting the TLS options")
    unset = {"ClientCertFile", "ClientKeyFile", "CRLFile", "DHParameters", "Timeout.starttls", "TLSSrvOptions"}
    for name, value in options.items():
        config.set_option(server, name, value)
    for name in unset - set(options):
        config.unset_option(server, name)
    progress(80, "starting a cf build")
    build = config.start_build(server, user=row.created_by)
    row.output = "\n".join(
        [*(f"{name}={value}" for name, value in options.items()), f"{CA_PATH_DIR}/: {', '.join(hashed)}"]
    )
    return build


def wide_files(directory: Path) -> list[str]:
    """Files in the certificate directory readable or writable beyond what sendmail accepts."""
    problems = []
    for path in sorted(directory.rglob("*")):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_file() and mode & 0o137:
            problems.append(f"{path} is {mode:04o}")
    return problems
