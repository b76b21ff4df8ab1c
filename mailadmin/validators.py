"""Validators for what a host's agent configuration says about an instance (mailadmin.mta.agent).

These values end up in argv lists, in sendmail.mc (where m4 expands them again and again) and
in sendmail.cf, so each one is held to an allow-list: anything a shell, m4 or sendmail would
read as syntax is refused with the rule it broke, never quietly cleaned up.
"""

from __future__ import annotations

import os
import re

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

from mailadmin.cf.paths import under_any

# Shell, m4 and cf syntax. `%` is here too: it is how a path smuggles an encoded `..` past a
# reader that decodes twice, and sendmail map specs expand it.
FORBIDDEN_PATH_CHARACTERS = "`'\"$#,()[]{};|&<>\\*?%"

# GNU m4 builtins sendmail's cf macros run under. Some act without parentheses (`dnl` eats the rest
# of the line, `divert` swallows output, `__file__` expands), so a bare word is enough to change a value.
M4_BUILTINS = frozenset(
    """
    __file__ __gnu__ __line__ __program__ __unix__ __windows__ builtin changecom changequote changeword
    debugfile debugmode decr define defn divert divnum dnl dumpdef errprint esyscmd eval format ifdef
    ifelse include incr index indir len m4exit m4wrap maketemp mkstemp patsubst popdef pushdef regexp
    shift sinclude substr syscmd sysval traceoff traceon translit undefine undivert
    """.split()
)

_M4_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_SYSLOG_TAG = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_QUEUE_INTERVAL = re.compile(r"([1-9][0-9]{0,5})([smhdw])")
_CELERY_QUEUE = re.compile(r"[a-z0-9._-]{1,60}")
_QUEUE_GLOB = re.compile(r"[A-Za-z0-9_.+-]+\*")


def _describe(character: str) -> str:
    return repr(character) if character.isprintable() else f"U+{ord(character):04X}"


def reject_m4_builtins(value: str) -> None:
    for word in _M4_WORD.findall(value):
        if word in M4_BUILTINS:
            raise ValidationError(
                f"“{word}” is an m4 builtin: m4 would expand it when building sendmail.cf.", code="m4_word"
            )


@deconstructible
class ServerPathValidator:
    """An absolute, canonical, plain-ASCII path that resolves inside one of `roots` (the
    directories the agent configuration declares for the instance).

    With allow_queue_glob the last component may be `prefix*`, sendmail's way of naming
    several queue directories (QueueDirectory=/var/spool/mqueue/q*).
    """

    def __init__(self, roots: tuple[str, ...] | list[str], allow_queue_glob: bool = False):
        self.roots = tuple(os.path.realpath(root) for root in roots)
        self.allow_queue_glob = allow_queue_glob

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServerPathValidator) and (other.roots, other.allow_queue_glob) == (
            self.roots,
            self.allow_queue_glob,
        )

    def __call__(self, value: str) -> None:
        for character in value:
            if character.isspace():
                raise ValidationError(f"Whitespace ({_describe(character)}) is not allowed in a path.", code="space")
            if not 0x21 <= ord(character) <= 0x7E:
                raise ValidationError(
                    f"Only printable ASCII is allowed in a path; found {_describe(character)}.", code="not_ascii"
                )
        if not value.startswith("/"):
            raise ValidationError("The path must be absolute (start with /).", code="relative")
        directory, last = os.path.split(value)
        if self.allow_queue_glob and "*" in last and _QUEUE_GLOB.fullmatch(last):
            checked = directory
        else:
            checked = value
        bad = sorted({character for character in checked if character in FORBIDDEN_PATH_CHARACTERS})
        if bad:
            shown = " ".join(bad)
            glob_hint = " (a trailing prefix* is allowed on the queue directory only)" if "*" in bad else ""
            raise ValidationError(
                f"These characters are not allowed in a path: {shown}{glob_hint}.", code="forbidden_character"
            )
        components = checked.split("/")[1:]
        if ".." in components:
            raise ValidationError("“..” components are not allowed in a path.", code="dotdot")
        if "." in components or "" in components[:-1]:
            raise ValidationError(
                f"Write the path in canonical form ({os.path.normpath(checked)}): no “.” or empty components.",
                code="not_canonical",
            )
        reject_m4_builtins(value)
        if not under_any(checked, self.roots):
            raise ValidationError(
                f"{value} resolves to {os.path.realpath(checked)}, outside the instance's roots "
                f"({', '.join(self.roots) or 'none declared'}). Declare the directory in the instance's roots.",
                code="outside_roots",
            )


def validate_hostname(value: str) -> None:
    """A fully qualified RFC 1123 host name, as sendmail's $j must be."""
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        raise ValidationError("A host name is plain ASCII letters, digits, hyphens and dots.", code="hostname")
    if len(value) > 253:
        raise ValidationError("A host name is at most 253 characters long.", code="hostname_length")
    labels = value.split(".")
    if len(labels) < 2:
        raise ValidationError(
            "Give the fully qualified name (with a dot, e.g. mail.example.com): sendmail stalls on an unqualified one.",
            code="not_qualified",
        )
    for label in labels:
        if not label:
            raise ValidationError(
                "A host name has no empty labels (no leading, trailing or doubled dots).", code="empty_label"
            )
        if not _HOST_LABEL.fullmatch(label):
            raise ValidationError(
                f"“{label}” is not a valid host name label: 1-63 letters, digits or hyphens, "
                "not starting or ending with a hyphen.",
                code="hostname_label",
            )
    if labels[-1].isdigit():
        raise ValidationError("The last label of a host name cannot be all digits.", code="numeric_tld")
    reject_m4_builtins(value)


def validate_syslog_tag(value: str) -> None:
    if not _SYSLOG_TAG.fullmatch(value):
        raise ValidationError(
            "A syslog tag is 1-40 characters: letters, digits, underscore, dot or hyphen.", code="syslog_tag"
        )


def validate_queue_interval(value: str) -> None:
    if not _QUEUE_INTERVAL.fullmatch(value):
        raise ValidationError(
            "A queue interval is a number followed by one unit: s, m, h, d or w (e.g. 30m, 1h, 2d).",
            code="queue_interval",
        )


def validate_celery_queue(value: str) -> None:
    if not _CELERY_QUEUE.fullmatch(value):
        raise ValidationError(
            "A Celery queue name is 1-60 characters: lower-case letters, digits, dot, underscore or hyphen.",
            code="celery_queue",
        )


def validate_port(value: int) -> None:
    if not 1 <= value <= 65535:
        raise ValidationError("A TCP port is between 1 and 65535.", code="port")
