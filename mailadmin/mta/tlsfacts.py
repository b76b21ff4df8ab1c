"""STARTTLS facts only the MTA's host can see (agent side): the certificate directory, the files the
installed cf names, and what the daemon advertises in its EHLO reply.

Everything here is read-only, never raises for a missing or broken file or daemon, and returns
plain dicts: they go into HostSnapshot.tls, and tlsconfig.facts reads them back for the pages.
"""

from __future__ import annotations

import grp
import os
import pwd
import smtplib
import stat

from mailadmin.cf.catalog import TLS_FILE_OPTIONS

PRIVATE_KEY_OPTIONS = frozenset({"ServerKeyFile", "ClientKeyFile"})
# A key readable by group or others: sendmail starts fine and silently stops offering STARTTLS.
KEY_READABLE_PROBLEM = "readable by group or others: sendmail will not offer STARTTLS with this key"

# The name the console gives itself in EHLO; it never relays, so any syntactically valid name will do.
EHLO_NAME = "mailadmin.localhost"


def _name_of(lookup, number: int) -> str:
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def path_facts(path: str, *, private_key: bool = False) -> dict:
    """exists, is_dir, mode (e.g. "0600"), owner ("user:group") and a problem, if any."""
    facts = {"path": path, "exists": False, "is_dir": False, "mode": "", "owner": "", "problem": ""}
    try:
        info = os.stat(path)
    except OSError as exc:
        facts["problem"] = exc.strerror or str(exc)
        return facts
    mode = stat.S_IMODE(info.st_mode)
    facts.update(
        exists=True,
        is_dir=stat.S_ISDIR(info.st_mode),
        mode=f"{mode:04o}",
        owner=f"{_name_of(pwd.getpwuid, info.st_uid)}:{_name_of(grp.getgrgid, info.st_gid)}",
    )
    if private_key and mode & 0o077:
        facts["problem"] = KEY_READABLE_PROBLEM
    return facts


def ehlo(address: str, port: int, timeout: float = 5.0) -> dict:
    """Connect to the daemon, say EHLO and list the extensions it advertises."""
    reply = {"greeting": "", "hello": "", "extensions": [], "starttls": False, "error": ""}
    smtp = smtplib.SMTP(local_hostname=EHLO_NAME, timeout=timeout)
    try:
        code, greeting = smtp.connect(address, port)
        if code != 220:
            reply["error"] = f"the daemon greeted with {code} {greeting.decode('utf-8', 'replace')}"
            return reply
        code, answer = smtp.ehlo()
        lines = answer.decode("utf-8", "replace").splitlines()
        if code != 250:
            reply["error"] = f"EHLO answered {code} {' '.join(lines)}"
            return reply
        extensions = lines[1:]
        reply.update(
            greeting=f"220 {greeting.decode('utf-8', 'replace')}",
            hello=lines[0] if lines else "",
            extensions=extensions,
            starttls=any(line.split()[0].upper() == "STARTTLS" for line in extensions if line.strip()),
        )
    except (OSError, smtplib.SMTPException) as exc:
        reply["error"] = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
    return reply


def key_problems(active_options: dict[str, str], files: dict[str, dict] | None = None) -> list[str]:
    """The private keys the cf names that sendmail would refuse (missing, or readable by group or
    others: it then silently offers no STARTTLS). `files`: path facts already read, by path."""
    problems = []
    for name in sorted(PRIVATE_KEY_OPTIONS):
        path = active_options.get(name, "")
        if not path.startswith("/"):
            continue
        facts = (files or {}).get(path) or path_facts(path, private_key=True)
        if facts["problem"]:
            mode = f" (mode {facts['mode']})" if facts["mode"] else ""
            problems.append(f"{name} {facts['path']}: {facts['problem']}{mode}")
    return problems


def gather(cert_dir: str, active_options: dict[str, str], address: str, port: int) -> dict:
    """HostSnapshot.tls: the certificate directory, each file the cf's TLS options name (by path), the
    problems of the private keys sendmail would refuse, and the daemon's EHLO reply."""
    named: dict[str, bool] = {}  # path -> named by a private-key option (a combined PEM counts as a key)
    for name in TLS_FILE_OPTIONS:
        value = active_options.get(name, "")
        if value.startswith("/"):
            named[value] = named.get(value, False) or name in PRIVATE_KEY_OPTIONS
    files = {path: {**path_facts(path, private_key=key), "private_key": key} for path, key in named.items()}
    return {
        "cert_dir": path_facts(cert_dir),
        "files": files,
        "key_problems": key_problems(active_options, files),
        "ehlo": ehlo(address, port),
    }
