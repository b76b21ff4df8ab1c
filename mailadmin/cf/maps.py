"""The map and class files of daily administration as typed rows: aliases, the four database maps
and the three class files. Pure: no model, no subprocess, no MTA file read.

Each file has a spec (its fixed name in the instance's conf directory, its line format, how it is
compiled, the FEATURE without which sendmail never reads it) and a key and value type. A row is
cleaned by its map's types before it is stored: an allow-list per field, so a newline, tab, NUL,
quote or `#` can never split a row, add one, or start a comment in the middle of a file.

These files never pass through m4 (sendmail reads them at run time, makemap and newaliases compile
them), so an m4 macro name such as `index` is an ordinary word here: a domain `index.example` is
refused in a cf option but is a fine relay domain.

Import is lossless: `parse` turns a file into rows where a line is in the canonical form `render`
writes, and keeps every other line (comments, blank lines, forms the console does not model, alias
entries continued on several lines) as verbatim text, byte for byte and in place.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from mailadmin.cf.accessmap import HOST_LABEL
from mailadmin.cf.paths import under_any

ALIASES = "aliases"
DATABASE = "database"
CLASS = "class"

MAX_KEY = 255
MAX_VALUE = 1000
MAX_COMMENT = 200
MAX_TARGETS = 50

DOMAIN = re.compile(rf"^{HOST_LABEL}(\.{HOST_LABEL})*$")
# A plain local part: no quoting, no routing characters (% ! @), nothing a shell or sendmail reads.
LOCAL_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+=-]{0,63}$")
USER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}$")
PROGRAM = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,63}$")
PROGRAM_ARGUMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+=@:-]{0,127}$")
PATH = re.compile(r"^/[A-Za-z0-9._+/-]{1,255}$")
MAILER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,31}$")
ERROR = re.compile(r"^error:(?:(?P<dsn>[245]\.\d{1,3}\.\d{1,3}):)?(?P<code>[45]\d\d) (?P<text>.+)$")
ERROR_TEXT = re.compile(r"^[A-Za-z0-9 .,:;()/@+=_!?-]{1,200}$")
NETWORK_PREFIX = re.compile(r"^\d{1,3}(\.\d{1,3}){0,3}$")
MAILER_LINE = re.compile(r"^M([A-Za-z0-9_-]+),", re.MULTILINE)


@dataclass(frozen=True)
class MapSpec:
    """What a map or class file is: everything a page, the service and a build need to know."""

    name: str  # the fixed file name under the instance's conf directory (= MapEntry.Map)
    kind: str  # ALIASES, DATABASE or CLASS
    title: str
    key_label: str
    value_label: str  # "" for class files: a row is one word
    feature: str | None  # the FEATURE the cf needs to read the file at all
    read_by: str  # how sendmail comes to read it, for the page
    example_key: str
    example_value: str

    @property
    def compiled_with(self) -> str:
        return {ALIASES: "newaliases", DATABASE: "makemap hash"}.get(self.kind, "")

    @property
    def has_value(self) -> bool:
        return self.kind != CLASS


SPECS: dict[str, MapSpec] = {
    spec.name: spec
    for spec in (
        MapSpec(
            "aliases",
            ALIASES,
            "Aliases",
            "local name",
            "targets, comma-separated",
            None,
            "the alias file (AliasFile, ALIAS_FILE in the .mc) is read by every cf; compiled with newaliases",
            "webmaster",
            "alice, bob@example.org",
        ),
        MapSpec(
            "virtusertable",
            DATABASE,
            "Virtual users",
            "user@domain or @domain",
            "address, local user, %1 form or error:",
            "virtusertable",
            "FEATURE(`virtusertable'); the domain must also be a local one (class w) or in VIRTUSER_DOMAIN",
            "info@example.org",
            "alice",
        ),
        MapSpec(
            "mailertable",
            DATABASE,
            "Mail routing (mailertable)",
            "domain or .domain",
            "mailer:[host]:port, local:, error:",
            "mailertable",
            "FEATURE(`mailertable')",
            "partner.example",
            "esmtp:[mx.partner.example]",
        ),
        MapSpec(
            "genericstable",
            DATABASE,
            "Outgoing addresses (genericstable)",
            "local user or user@domain",
            "address",
            "genericstable",
            "FEATURE(`genericstable'); only senders in class G (GENERICS_DOMAIN) are rewritten",
            "alice",
            "alice.smith@example.org",
        ),
        MapSpec(
            "domaintable",
            DATABASE,
            "Domain table",
            "old domain",
            "new domain",
            "domaintable",
            "FEATURE(`domaintable')",
            "old.example",
            "example.org",
        ),
        MapSpec(
            "local-host-names",
            CLASS,
            "Local domains (class w)",
            "domain or host name",
            "",
            "use_cw_file",
            "FEATURE(`use_cw_file') makes the cf read it into class w (Fw line): mail to these names is delivered here",
            "example.org",
            "",
        ),
        MapSpec(
            "relay-domains",
            CLASS,
            "Relay domains (class R)",
            "domain, IP address or prefix",
            "",
            None,
            "every cf reads it into class R if it exists (confCR_FILE, FR-o line; Debian reads each line up to a #):"
            " hosts in these domains may relay, and mail to them is relayed",
            "partner.example",
            "",
        ),
        MapSpec(
            "trusted-users",
            CLASS,
            "Trusted users (class t)",
            "user name",
            "",
            "use_ct_file",
            "FEATURE(`use_ct_file') makes the cf read it into class t: these users may set the sender (-f)",
            "www-data",
            "",
        ),
    )
}
MAP_NAMES = tuple(SPECS)


@dataclass(frozen=True)
class Row:
    """A typed entry: for class files `value` is empty."""

    key: str
    value: str
    comment: str = ""


@dataclass(frozen=True)
class Verbatim:
    """Lines the console does not model, exactly as they were (newlines included)."""

    text: str


Line = Row | Verbatim


def spec_of(map_name: str) -> MapSpec:
    try:
        return SPECS[map_name]
    except KeyError:
        raise ValidationError(f"{str(map_name)[:40]!r} is not a map or class file this console manages") from None


# --- characters every field refuses ------------------------------------------------------------


def _check_characters(text: str, *, allow_space: bool = False) -> None:
    for character in text:
        point = ord(character)
        if character in "\r\n":
            raise ValidationError("contains a line break: it would start a new row of the file")
        if character == "\t":
            raise ValidationError("contains a tab: it separates key and value and would split the row")
        if point < 0x20 or point == 0x7F:
            raise ValidationError(f"contains a control character (U+{point:04X})")
        if point > 0x7E:
            raise ValidationError(
                f"contains a non-ASCII character (U+{point:04X}): write an international domain in its xn-- form"
            )
        if character == " " and not allow_space:
            raise ValidationError("contains a space")
        if character in "\"'`":
            raise ValidationError("contains a quote: sendmail reads quotes as syntax here")
        if character in "#$\\<>":
            raise ValidationError(f"contains {character!r}, which sendmail reads as syntax in this file")


def _length(text: str, limit: int) -> None:
    if len(text) > limit:
        raise ValidationError(f"is {len(text)} characters long; at most {limit} are allowed")


# --- field types ---------------------------------------------------------------------------------


def domain(text: str) -> str:
    if len(text) > 253 or not DOMAIN.match(text):
        raise ValidationError(f"{text!r} is not a domain or host name (letters, digits, - and dots)")
    return text


def local_part(text: str) -> str:
    if not LOCAL_PART.match(text):
        raise ValidationError(f"{text!r} is not a plain local part (letters, digits and . _ + = -)")
    return text


def address(text: str) -> str:
    """user@domain."""
    local, at, host = text.rpartition("@")
    if not at:
        raise ValidationError(f"{text!r} is not an address (user@domain)")
    local_part(local)
    domain(host)
    return text


def user_or_address(text: str) -> str:
    return address(text) if "@" in text else local_part(text)


def error_target(text: str) -> str:
    """error:D.S.N:CODE text, or error:CODE text."""
    found = ERROR.match(text)
    if not found:
        raise ValidationError(f"{text!r} is not error:5.7.0:550 text (DSN status, SMTP code, then a message)")
    if found["dsn"] and found["dsn"][0] != found["code"][0]:
        raise ValidationError("the DSN status and the SMTP code must agree (5.x.x with 5xx, 4.x.x with 4xx)")
    if not ERROR_TEXT.match(found["text"]) or found["text"] != found["text"].strip() or "  " in found["text"]:
        raise ValidationError("the message may hold letters, digits, single spaces and . , : ; ( ) / @ + = _ ! ? -")
    return text


def network(text: str) -> str:
    """An IPv4 address or prefix as class R holds it (192.0.2, 10.1), or IPv6:address."""
    if text.startswith("IPv6:"):
        try:
            ipaddress.IPv6Address(text[5:])
        except ValueError:
            raise ValidationError(f"{text!r} is not an IPv6 address (write IPv6:2001:db8::1)") from None
        return text
    if NETWORK_PREFIX.match(text) and all(0 <= int(part) <= 255 for part in text.split(".")):
        return text
    raise ValidationError(f"{text!r} is not an IPv4 address or prefix")


def _path_under_roots(path: str, roots: tuple[str, ...], what: str) -> str:
    parts = path.split("/")
    if not PATH.match(path) or ".." in parts or "." in parts or "" in parts[1:]:
        raise ValidationError(f"{what} {path!r} is not a plain absolute path (letters, digits and . _ + - /)")
    if not roots:
        raise ValidationError(f"{what} {path!r} cannot be checked: the host's agent has not declared its directories")
    if not under_any(path, roots):
        raise ValidationError(f"{what} {path!r} is outside the instance's directories ({', '.join(roots)})")
    return path


def program_target(text: str) -> str:
    """|program args: a bare program name smrsh finds in its own directory, arguments from a short list."""
    words = text[1:].split(" ")
    if not PROGRAM.match(words[0]):
        raise ValidationError(
            f"{text!r}: a program is a bare name that smrsh finds in its own directory (no /, no shell syntax)"
        )
    for word in words[1:]:
        if not PROGRAM_ARGUMENT.match(word):
            raise ValidationError(f"{text!r}: program arguments are single words (letters, digits and . _ + = @ : -)")
    if len(words) > 8:
        raise ValidationError(f"{text!r}: at most 7 arguments")
    return text


def privileged_target(target: str) -> bool:
    """Does this alias target run a program or write a file as sendmail does (administrators only)?"""
    return target.startswith(("|", "/", ":include:"))


def alias_target(target: str, *, privileged: bool, roots: tuple[str, ...]) -> str:
    if privileged_target(target) and not privileged:
        raise ValidationError(f"{target!r}: programs, files and :include: lists are for administrators only")
    if target.startswith("|"):
        return program_target(target)
    if target.startswith(":include:"):
        return ":include:" + _path_under_roots(target[9:], roots, ":include: list")
    if target.startswith("/"):
        return _path_under_roots(target, roots, "file")
    return user_or_address(target)


def alias_targets(value: str, *, privileged: bool, roots: tuple[str, ...]) -> str:
    """The canonical target list: `a, b, c`."""
    targets = [target.strip() for target in value.split(",")]
    if any(target == "" for target in targets):
        raise ValidationError("an empty target (two commas, or a comma at either end)")
    if len(targets) > MAX_TARGETS:
        raise ValidationError(f"{len(targets)} targets; at most {MAX_TARGETS} (use an :include: list)")
    cleaned = [alias_target(target, privileged=privileged, roots=roots) for target in targets]
    if len({target.lower() for target in cleaned}) != len(cleaned):
        raise ValidationError("a target appears twice")
    return ", ".join(cleaned)


def virtuser_key(text: str) -> str:
    if text.startswith("@"):
        return "@" + domain(text[1:])
    if "@" not in text:
        raise ValidationError(f"{text!r} is not user@domain or @domain (a catch-all)")
    return address(text)


def virtuser_value(text: str) -> str:
    if text.startswith("error:"):
        return error_target(text)
    if text == "%1":
        return text
    if text.startswith("%1@"):
        return "%1@" + domain(text[3:])
    if "%" in text:
        raise ValidationError(f"{text!r}: the only % forms are %1 and %1@domain (the user part of a catch-all)")
    return user_or_address(text)


def mailertable_key(text: str) -> str:
    return "." + domain(text[1:]) if text.startswith(".") else domain(text)


def _relay_host(text: str) -> str:
    """host, [host], [192.0.2.1], [IPv6:…], each optionally :port."""
    host, port = text, ""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValidationError(f"{text!r}: an unclosed [")
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValidationError(f"{text!r}: only :port may follow [host]")
            port = rest[1:]
        if host.startswith("IPv6:"):
            network(host)
        else:
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                domain(host)
    else:
        host, colon, port = text.partition(":")
        if colon and not port:
            raise ValidationError(f"{text!r}: a port is missing after the colon")
        domain(host)
    if port and (not port.isdigit() or not 0 < int(port) < 65536 or port != str(int(port))):
        raise ValidationError(f"{port!r} is not a port number (1-65535)")
    return text


def mailertable_value(text: str, mailers: tuple[str, ...] | list[str]) -> str:
    if text.startswith("error:"):
        return error_target(text)
    mailer, colon, rest = text.partition(":")
    if not colon:
        raise ValidationError(f"{text!r} is not mailer:host (e.g. esmtp:[mx.example.org])")
    if not MAILER.match(mailer):
        raise ValidationError(f"{mailer!r} is not a mailer name")
    if mailer not in mailers:
        known = ", ".join(m for m in mailers if m not in ("prog", "local")) or "none reported"
        raise ValidationError(f"the installed cf defines no {mailer!r} mailer (it has: {known})")
    if mailer == "local":
        return text if rest == "" else "local:" + local_part(rest)
    if rest == "":
        raise ValidationError(f"{text!r}: a host is missing after {mailer}:")
    return f"{mailer}:{_relay_host(rest)}"


def genericstable_key(text: str) -> str:
    return user_or_address(text)


def class_word(map_name: str, text: str) -> str:
    if map_name == "trusted-users":
        if not USER_NAME.match(text):
            raise ValidationError(f"{text!r} is not a user name (letters, digits and . _ -)")
        return text
    if map_name == "relay-domains" and (NETWORK_PREFIX.match(text) or text.startswith("IPv6:")):
        return network(text)
    return domain(text)


def clean_comment(text: str) -> str:
    if len(text) > MAX_COMMENT:
        raise ValidationError({"comment": f"is {len(text)} characters long; at most {MAX_COMMENT}"})
    for character in text:
        if not 0x20 <= ord(character) <= 0x7E:
            raise ValidationError({"comment": f"contains U+{ord(character):04X}: a comment is one line of plain ASCII"})
    return text.strip()


def clean_row(
    map_name: str,
    key: str,
    value: str = "",
    comment: str = "",
    *,
    privileged: bool = False,
    roots: tuple[str, ...] | list[str] = (),
    mailers: tuple[str, ...] | list[str] = (),
) -> Row:
    """One row as it goes into the file, or ValidationError naming the field ({"key": …}/{"value": …}).

    `privileged`: the caller is an administrator (program, file and :include: alias targets);
    `roots`: the instance's directories, under which files and include lists must lie;
    `mailers`: the mailers the installed cf defines (mailers_in_cf), for mailertable.
    """
    spec = spec_of(map_name)
    roots = tuple(roots)
    if not isinstance(key, str) or not isinstance(value, str) or not isinstance(comment, str):
        raise ValidationError("key, value and comment must be text")
    errors: dict[str, str] = {}
    for field, text, limit, spaces in (
        ("key", key, MAX_KEY, False),
        ("value", value, MAX_VALUE, spec.kind == ALIASES or value.startswith("error:") or value.startswith("|")),
    ):
        try:
            _length(text, limit)
            _check_characters(text, allow_space=spaces)
        except ValidationError as exc:
            errors[field] = exc.messages[0]
    if key == "":
        errors.setdefault("key", "a key is required")
    if spec.has_value and value == "":
        errors.setdefault("value", "a value is required")
    if not spec.has_value and value != "":
        errors.setdefault("value", f"{map_name} holds one word per line, no value")
    if errors:
        raise ValidationError(errors)
    comment = clean_comment(comment)

    def check(field: str, function, *args, **kwargs) -> str:
        try:
            return function(*args, **kwargs)
        except ValidationError as exc:
            raise ValidationError({field: exc.messages}) from None

    if map_name == ALIASES:
        if ":" in key:
            raise ValidationError({"key": "an alias name cannot contain ':' (it ends the name)"})
        key = check("key", local_part, key)
        value = check("value", alias_targets, value, privileged=privileged, roots=roots)
    elif map_name == "virtusertable":
        key = check("key", virtuser_key, key)
        value = check("value", virtuser_value, value)
    elif map_name == "mailertable":
        key = check("key", mailertable_key, key)
        # Not tuple(mailers): that would turn parse's _AnyMailer into an empty tuple, and no imported
        # mailertable line would ever become a row.
        value = check("value", mailertable_value, value, mailers if isinstance(mailers, tuple) else tuple(mailers))
    elif map_name == "genericstable":
        key = check("key", genericstable_key, key)
        value = check("value", address, value)
    elif map_name == "domaintable":
        key = check("key", domain, key)
        value = check("value", domain, value)
    else:
        key = check("key", class_word, map_name, key)
    return Row(key, value, comment)


def mailers_in_cf(cf_text: str) -> list[str]:
    """The mailers a cf defines (its `M` lines), in order: what a mailertable row may route to."""
    return list(dict.fromkeys(MAILER_LINE.findall(cf_text or "")))


# --- the file ------------------------------------------------------------------------------------


def render_row(map_name: str, row: Row) -> str:
    """The row's line in canonical form (without its comment line), no newline."""
    kind = spec_of(map_name).kind
    if kind == ALIASES:
        return f"{row.key}: " + ", ".join(_quoted_program(target) for target in row.value.split(", "))
    if kind == DATABASE:
        return f"{row.key}\t{row.value}"
    return row.key


def _quoted_program(target: str) -> str:
    """A program with arguments goes in double quotes, or sendmail joins its words with dots
    (`|vacation alice` runs `|vacation.alice`); the words themselves never hold a quote."""
    return f'"{target}"' if target.startswith("|") and " " in target else target


def _unquoted_program(target: str) -> str:
    return target[1:-1] if target.startswith('"|') and target.endswith('"') and len(target) > 3 else target


def _row_text(map_name: str, row: Row) -> str:
    comment = f"# {row.comment}\n" if row.comment else ""
    return comment + render_row(map_name, row) + "\n"


def render(map_name: str, lines: list[Line]) -> str:
    """The file: rows in canonical form, verbatim text exactly as it was.

    A verbatim block that ended the imported file without a newline gets one only when something
    now follows it, so it cannot run into the next row.
    """
    spec_of(map_name)
    out: list[str] = []
    for line in lines:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append(line.text if isinstance(line, Verbatim) else _row_text(map_name, line))
    return "".join(out)


def _split_lines(text: str) -> list[str]:
    """Lines split at \\n only (str.splitlines would also split at \\r, \\x0b, U+2028 …), newlines kept."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _as_row(map_name: str, line: str) -> Row | None:
    """The row this line is in canonical form, or None (then it stays verbatim)."""
    if not line.endswith("\n"):
        return None
    content = line[:-1]
    kind = spec_of(map_name).kind
    if kind == ALIASES:
        key, colon, value = content.partition(": ")
        if not colon:
            return None
        value = ", ".join(_unquoted_program(target) for target in value.split(", "))
    elif kind == DATABASE:
        key, tab, value = content.partition("\t")
        if not tab:
            return None
    else:
        key, value = content, ""
    try:
        # Imported rows are judged as an administrator's would be; privileged targets then need no
        # roots check to stay in the file (they stay verbatim), and the agent re-checks them at build.
        row = clean_row(map_name, key, value, privileged=True, mailers=_ANY_MAILER, roots=_NO_ROOTS)
    except ValidationError:
        return None
    return row if render_row(map_name, row) == content else None


class _AnyMailer(tuple):
    """At import the installed cf's mailers are not known: any well-formed mailer name is kept."""

    def __contains__(self, item) -> bool:
        return isinstance(item, str) and bool(MAILER.match(item))


_ANY_MAILER = _AnyMailer()
_NO_ROOTS: tuple[str, ...] = ()


def parse(map_name: str, text: str) -> list[Line]:
    """The file as lines: rows where a line is canonical, verbatim text (grouped) everywhere else.

    An alias entry continued on following lines (they start with a space or tab) stays verbatim as
    a whole. A `# text` line directly above a row becomes its comment when rendering gives back the
    same bytes. render(map_name, parse(map_name, text)) == text for any text.
    """
    kind = spec_of(map_name).kind
    raw = _split_lines(text)
    # Group each alias entry with its continuation lines: an entry is one unit of the file.
    units: list[str] = []
    for line in raw:
        if kind == ALIASES and units and line[:1] in (" ", "\t") and not units[-1].startswith(("#", "\n")):
            units[-1] += line
        else:
            units.append(line)
    lines: list[Line] = []
    for unit in units:
        row = _as_row(map_name, unit) if unit.count("\n") <= 1 else None
        if row is None:
            if lines and isinstance(lines[-1], Verbatim):
                lines[-1] = Verbatim(lines[-1].text + unit)
            else:
                lines.append(Verbatim(unit))
            continue
        previous = lines[-1] if lines else None
        if isinstance(previous, Verbatim):
            head, last = _last_line(previous.text)
            comment = _comment_of(last)
            if comment is not None:
                if head:
                    lines[-1] = Verbatim(head)
                else:
                    lines.pop()
                row = Row(row.key, row.value, comment)
        lines.append(row)
    return lines


def _last_line(text: str) -> tuple[str, str]:
    body = text[:-1]
    cut = body.rfind("\n") + 1
    return text[:cut], text[cut:]


def _comment_of(line: str) -> str | None:
    """The comment a `# text` line carries, if rendering it as a row's comment gives the same line."""
    if not line.startswith("# ") or not line.endswith("\n"):
        return None
    text = line[2:-1]
    try:
        cleaned = clean_comment(text)
    except ValidationError:
        return None
    return cleaned if cleaned and f"# {cleaned}\n" == line else None


def counts(lines: list[Line]) -> tuple[int, int]:
    """(typed rows, verbatim lines) of a parsed file, for the import preview."""
    rows = sum(1 for line in lines if isinstance(line, Row))
    verbatim = sum(len(_split_lines(line.text)) for line in lines if isinstance(line, Verbatim))
    return rows, verbatim
