"""Read a sendmail .mc into the values the catalog manages, and write it back out.

`parse_mc` splits a .mc into segments: the option defines, macro calls (MASQUERADE_AS …) and
FEATURE() lines the catalog models (`OptionDefine`, `FeatureDecl`), the DAEMON_OPTIONS and
CLIENT_OPTIONS lines (`ListenerDecl`, typed `ListenerSpec`s), the confCF_VERSION build stamp
(`BuildStamp`), and everything else kept byte for byte (`Unmanaged`). It follows m4's quoting,
parentheses, `dnl` and comments across lines, so a line is managed only when it is a whole
construct at the top level; anything it is not sure about stays unmanaged, and
`McDocument.notes` says why.

`render_mc` walks the segments again with new values: managed lines are re-emitted (verbatim if
the value did not change), dropped when unset, and new ones inserted where m4 wants them. It is a
pure function: the same document and values always give the same text.

A .mc written for sendmail's own Build (the cf/cf samples, FreeBSD's) has no include of cf.m4:
Build runs `m4 ../m4/cf.m4 file.mc`. render_mc puts that include at the top (`cf_tree=`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from mailadmin.cf import catalog
from mailadmin.cf.m4safe import (
    DaemonPortValue,
    EnumValue,
    NumberValue,
    ValueType,
    WordValue,
    check_reported,
    check_words,
)
from mailadmin.cf.paths import under_any

STAMP_MACRO = "confCF_VERSION"
BUILD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
LISTENER_MACROS = {"daemon": "DAEMON_OPTIONS", "client": "CLIENT_OPTIONS"}


class UnsafeValue(ValueError):
    """render_mc was given a value that is not a cleaned, m4-inert catalog value."""


@dataclass(frozen=True)
class Unmanaged:
    text: str
    # False once m4's quotes or comment characters changed: nothing may be inserted after it.
    trusted: bool = True


@dataclass(frozen=True)
class OptionDefine:
    """define(`confX', `value') (or DAEMON_OPTIONS(`value')) for an option in the catalog."""

    m4_name: str
    value: str
    tail: str = "dnl\n"
    source: str = ""

    @property
    def name(self) -> str:
        return catalog.BY_M4[self.m4_name].name


@dataclass(frozen=True)
class FeatureDecl:
    """FEATURE(`name', …) for a catalog FEATURE; args are the catalog's values, not m4's."""

    name: str
    args: tuple[str, ...]
    tail: str = "dnl\n"
    source: str = ""


@dataclass(frozen=True)
class BuildStamp:
    value: str
    tail: str = "dnl\n"
    source: str = ""


# ---------------------------------------------------------------------------------------------
# Listeners: DAEMON_OPTIONS / CLIENT_OPTIONS

# The modifier letters sendmail documents (op.me, cf/README; c, f, r and u are read by proto.m4's
# rules from ${daemon_flags}). A daemon accepts mail, a client sends it.
DAEMON_MODIFIERS = "abcfrsuACEOS"
CLIENT_MODIFIERS = "hAS"
# Service names sendmail may be given instead of a port number, and their numbers.
SERVICE_PORTS = {"smtp": "25", "submission": "587", "smtps": "465"}


class _MilterNamesValue(ValueType):
    """InputMailFilters= inside a listener: milter names separated by `;` (a comma ends the key)."""

    name = "milter names"
    allowed_characters = ";"

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        names = raw.split(";")
        for name in names:
            WordValue().clean(name, reserved=reserved, roots=roots)
        if len(set(names)) != len(names):
            raise self.invalid("Names a milter twice.", code="duplicate")
        return raw

    def describe(self) -> str:
        return "milter names separated by ; (each declared with INPUT_MAIL_FILTER)"


_BUFFER = NumberValue(1, 16_777_216)
_LOAD = NumberValue(0, 10_000)
# The other keys of a listener line: name → (its type, the kinds it belongs to).
EXTRA_KEYS: dict[str, tuple[ValueType, tuple[str, ...]]] = {
    "Listen": (NumberValue(1, 65_535), ("daemon",)),
    "SendBufSize": (_BUFFER, ("daemon", "client")),
    "ReceiveBufSize": (_BUFFER, ("daemon", "client")),
    "InputMailFilters": (_MilterNamesValue(), ("daemon",)),
    "children": (NumberValue(0, 100_000), ("daemon",)),
    "DeliveryMode": (
        EnumValue(("background", "interactive", "queueonly", "deferred", "b", "i", "q", "d")),
        ("daemon",),
    ),
    "refuseLA": (_LOAD, ("daemon",)),
    "delayLA": (_LOAD, ("daemon",)),
    "queueLA": (_LOAD, ("daemon",)),
}
_FIELD_KEYS = {"name": "Name", "family": "Family", "port": "Port", "addr": "Addr", "m": "M", "modifiers": "M"}
_EXTRA_BY_LOWER = {key.lower(): key for key in EXTRA_KEYS}


@dataclass(frozen=True)
class ListenerSpec:
    """One DAEMON_OPTIONS (kind daemon) or CLIENT_OPTIONS (kind client) line, every field cleaned.

    `extra` holds the other keys as `Key=value` pairs joined by commas, in the order given."""

    kind: str
    name: str = ""
    family: str = ""
    port: str = ""
    address: str = ""
    modifiers: str = ""
    extra: str = ""

    @property
    def macro(self) -> str:
        return LISTENER_MACROS[self.kind]

    def value(self) -> str:
        """The option text: what DaemonPortOptions= / ClientPortOptions= says in sendmail.cf."""
        fields = [("Name", self.name), ("Family", self.family), ("Port", self.port), ("Addr", self.address)]
        fields.append(("M", self.modifiers))
        text = ",".join(f"{key}={value}" for key, value in fields if value)
        return ",".join(filter(None, [text, self.extra]))

    def mc_line(self) -> str:
        """The .mc text for this listener (without its dnl)."""
        return f"{self.macro}(`{self.value()}')"

    def cf_line(self) -> str:
        """The sendmail.cf line a build of this listener must contain verbatim."""
        option = "DaemonPortOptions" if self.kind == "daemon" else "ClientPortOptions"
        return f"O {option}={self.value()}"

    def socket(self) -> tuple[str, str, str]:
        """(family, address, port number): two daemons on one socket cannot both bind it."""
        family = self.family or ("inet6" if ":" in self.address else "inet")
        return family, self.address or "*", SERVICE_PORTS.get(self.port, self.port or "25")


def clean_listener(kind: str, fields: dict[str, str], *, reserved: frozenset[str]) -> ListenerSpec:
    """A ListenerSpec from form or file fields (name, family, port, address, modifiers, extra);
    ValidationError naming the field and the rule it broke."""
    check_reported(reserved)
    if kind not in LISTENER_MACROS:
        raise ValidationError(f"‘{str(kind)[:20]}’ is neither daemon nor client.", code="choice")
    types = DaemonPortValue.FIELDS
    cleaned: dict[str, str] = {}
    for part, key in (("name", "Name"), ("family", "Family"), ("port", "Port"), ("address", "Addr")):
        raw = fields.get(part, "")
        try:
            cleaned[part] = types[key].clean(raw, reserved=reserved) if raw else ""
        except ValidationError as exc:
            raise ValidationError(f"{key}=: {exc.messages[0]}", code=exc.code) from None
    letters = DAEMON_MODIFIERS if kind == "daemon" else CLIENT_MODIFIERS
    modifiers = fields.get("modifiers", "")
    if (
        not isinstance(modifiers, str)
        or any(c not in letters for c in modifiers)
        or len(set(modifiers)) != len(modifiers)
    ):
        raise ValidationError(
            f"M=: only the letters {letters}, each at most once, are {kind} modifiers.", code="invalid"
        )
    cleaned["modifiers"] = modifiers
    cleaned["extra"] = _clean_extra(kind, fields.get("extra", ""), reserved)
    # The lengths a Listener row holds.
    if len(cleaned["name"]) > 40 or len(cleaned["extra"]) > 300:
        raise ValidationError("Name= may have at most 40 characters, the other keys 300 together.", code="too_long")
    if kind == "daemon" and not cleaned["port"] and not cleaned["address"] and not cleaned["name"]:
        raise ValidationError("Give at least a port, an address or a name.", code="required")
    if cleaned["family"] and cleaned["address"]:
        family = "inet6" if ":" in cleaned["address"] else "inet"
        if cleaned["family"] != family:
            raise ValidationError(
                f"Addr={cleaned['address']} does not belong to Family={cleaned['family']}.", code="invalid"
            )
    return ListenerSpec(kind, **cleaned)


def _clean_extra(kind: str, raw: str, reserved: frozenset[str]) -> str:
    if not isinstance(raw, str) or raw == "":
        return ""
    if raw.strip(" ") == "":
        return ""
    if any(not c.isprintable() for c in raw):
        # A newline or tab would start a second m4 line or split the option list.
        raise ValidationError("The other keys may not hold a newline, tab or control character.", code="invalid")
    pairs: list[str] = []
    seen: set[str] = set()
    for part in re.split(r" *, *", raw.strip()):
        key, equals, value = part.partition("=")
        canonical = _EXTRA_BY_LOWER.get(key.strip().lower())
        if not equals or canonical is None or kind not in EXTRA_KEYS[canonical][1]:
            allowed = ", ".join(k for k, (_, kinds) in EXTRA_KEYS.items() if kind in kinds)
            raise ValidationError(
                f"‘{part[:40]}’: the other keys a {kind} line may have are {allowed}.", code="invalid"
            )
        if canonical in seen:
            raise ValidationError(f"{canonical}= is given twice.", code="duplicate")
        seen.add(canonical)
        try:
            value = EXTRA_KEYS[canonical][0].clean(value.strip(), reserved=reserved)
        except ValidationError as exc:
            raise ValidationError(f"{canonical}=: {exc.messages[0]}", code=exc.code) from None
        pairs.append(f"{canonical}={value}")
    return ",".join(pairs)


def parse_listener_value(kind: str, text: str, *, reserved: frozenset[str]) -> ListenerSpec:
    """The ListenerSpec of a DAEMON_OPTIONS/CLIENT_OPTIONS argument such as Debian's
    `Family=inet,  Name=MTA-v4, Port=smtp, Addr=127.0.0.1'; ValidationError if any part fails."""
    fields: dict[str, str] = {}
    extra: list[str] = []
    for part in re.split(r"[ \t]*,[ \t]*", text.strip(" \t")):
        key, equals, value = part.partition("=")
        field = _FIELD_KEYS.get(key.strip().lower())
        if not equals:
            raise ValidationError(f"‘{part[:40]}’ is not a key=value pair.", code="invalid")
        if field is None:
            extra.append(part)
            continue
        name = {"Name": "name", "Family": "family", "Port": "port", "Addr": "address", "M": "modifiers"}[field]
        if name in fields:
            raise ValidationError(f"{field}= is given twice.", code="duplicate")
        fields[name] = value.strip()
    fields["extra"] = ",".join(extra)
    return clean_listener(kind, fields, reserved=reserved)


def listener_problems(listeners: list[ListenerSpec]) -> list[str]:
    """What sendmail would fail on in this set of listeners: two daemons on one socket."""
    problems: list[str] = []
    seen: dict[tuple[str, str, str], ListenerSpec] = {}
    for spec in listeners:
        if spec.kind != "daemon":
            continue
        socket = spec.socket()
        if socket in seen:
            problems.append(
                f"Two daemons listen on {socket[1]} port {socket[2]} ({socket[0]}): "
                f"{seen[socket].name or 'unnamed'} and {spec.name or 'unnamed'}; the second could not bind it."
            )
        seen.setdefault(socket, spec)
    return problems


def listener_comment(tail: str) -> str:
    """The comment of a listener line's `dnl # …` tail, as a row keeps it."""
    text = tail.strip()
    text = text[3:] if text.startswith("dnl") else text
    return text.strip().lstrip("#").strip()[:200]


def _listener_tail(comment: str) -> str:
    # m4 discards everything after dnl up to the newline, so only a line break could escape it.
    comment = "".join(c for c in comment if c.isprintable())[:200]
    return f"dnl # {comment}\n" if comment.strip() else "dnl\n"


@dataclass(frozen=True)
class ListenerDecl:
    spec: ListenerSpec
    tail: str = "dnl\n"
    source: str = ""


Segment = Unmanaged | OptionDefine | FeatureDecl | BuildStamp | ListenerDecl


@dataclass
class McDocument:
    segments: list[Segment]
    notes: list[str] = field(default_factory=list)

    def options(self) -> dict[str, str]:
        """cf option name → value, for the options this file sets with lines the console manages
        (the words of every MASQUERADE_DOMAIN or EXPOSED_USER line together: each adds to its class)."""
        found: dict[str, str] = {}
        for s in self.segments:
            if isinstance(s, OptionDefine):
                found[s.name] = (
                    _accumulated(found.get(s.name), s) if s.m4_name in catalog.ACCUMULATING_CALLS else s.value
                )
        return found

    def features(self) -> dict[str, tuple[str, ...]]:
        """FEATURE name → its values (trailing empty ones left out), for managed FEATURE lines."""
        return {s.name: s.args for s in self.segments if isinstance(s, FeatureDecl)}

    def build_stamp(self) -> str | None:
        return next((s.value for s in self.segments if isinstance(s, BuildStamp)), None)

    def listeners(self) -> list[tuple[ListenerSpec, str]]:
        """(spec, comment) of each listener line the console manages, in file order."""
        return [(s.spec, listener_comment(s.tail)) for s in self.segments if isinstance(s, ListenerDecl)]

    @property
    def needs_cf_m4(self) -> bool:
        """True for a .mc written for sendmail's Build, which supplies cf.m4 itself."""
        return not _INCLUDES_CF_M4.search(self.text())

    def text(self) -> str:
        """The file as it was read."""
        return "".join(s.text if isinstance(s, Unmanaged) else s.source for s in self.segments)


# ---------------------------------------------------------------------------------------------
# Splitting a file into top-level constructs


@dataclass
class _ScanState:
    quote_depth: int = 0
    paren_depth: int = 0
    comments: bool = True
    quotes_changed: bool = False

    @property
    def top_level(self) -> bool:
        return self.quote_depth == 0 and self.paren_depth == 0


_WORD_START = re.compile(r"[A-Za-z_]")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUOTE_CHANGERS = ("changequote", "changecom", "changeword")


def _scan_line(line: str, state: _ScanState) -> None:
    """Advance the m4 state over one line, the way m4 reads it (default quotes `…')."""
    index = 0
    while index < len(line):
        character = line[index]
        if state.quote_depth:
            if character == "`":
                state.quote_depth += 1
            elif character == "'":
                state.quote_depth -= 1
            index += 1
            continue
        if character == "#" and state.comments:
            return
        if character == "`":
            state.quote_depth += 1
        elif character == "(" and state.paren_depth:
            state.paren_depth += 1
        elif character == ")" and state.paren_depth:
            state.paren_depth -= 1
        elif _WORD_START.match(character):
            # Words are consumed whole, so a letter seen here always starts one (`9dnl` is 9, dnl).
            word = _WORD.match(line, index).group()
            if word == "dnl":
                return
            if word in _QUOTE_CHANGERS:
                state.quotes_changed = True
            index += len(word)
            # A word followed at once by `(` may be a macro call collecting arguments; assuming
            # it is errs towards treating more text as unmanaged, never less.
            if line.startswith("(", index):
                state.paren_depth += 1
                index += 1
            continue
        index += 1


_LINES = re.compile(r"[^\n]*\n|[^\n]+\Z")
_INCLUDES_CF_M4 = re.compile(r"^include\(\s*`?[^`'()\n]*cf\.m4'?\)", re.MULTILINE)


def _constructs(text: str) -> list[tuple[int, str, bool]]:
    """(first line number, text, trusted) of each top-level construct: a line, or the lines an
    open quote or parenthesis holds together. Not trusted once quotes or comments were changed."""
    # Only \n ends a line for m4; str.splitlines would also split at form feeds and the like.
    lines = _LINES.findall(text)
    # cf.m4 turns m4 comments off (changecom()); before it is included, `#` starts a comment.
    state = _ScanState(comments=bool(_INCLUDES_CF_M4.search(text)))
    units: list[tuple[int, str, bool]] = []
    current: list[str] = []
    start = 1
    for number, line in enumerate(lines, 1):
        if not current:
            start = number
        current.append(line)
        _scan_line(line, state)
        if state.top_level or state.quotes_changed:
            unit = "".join(current)
            units.append((start, unit, not state.quotes_changed))
            current = []
            if _INCLUDES_CF_M4.match(unit):
                state.comments = False
    if current:
        units.append((start, "".join(current), False))
    return units


# ---------------------------------------------------------------------------------------------
# Recognising managed constructs

_ARG = r"(?:`[^`'\n]*'|[^`'(),\s#]*)"
_NAME = r"(?:`(?P<qname>[A-Za-z_][A-Za-z0-9_]*)'|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
# What may follow a managed construct on its line: nothing, or a dnl comment. (After cf.m4 a `#`
# is not a comment, so text after one would still be read as m4.)
_TAIL = r"(?P<tail>(?:[ \t]*dnl(?![A-Za-z0-9_])[^\n]*)?\n?)"
_DEFINE = re.compile(rf"define\({_NAME},[ \t]*(?P<value>{_ARG})\){_TAIL}")
# define(`confX',dnl  ⏎  `value')dnl — how Debian's sendmail.mc sets confPRIVACY_FLAGS.
_SPLIT_DEFINE = re.compile(rf"define\({_NAME},[ \t]*dnl(?![A-Za-z0-9_])[^\n]*\n[ \t]*(?P<value>`[^`'\n]*')\){_TAIL}")
# DAEMON_OPTIONS lines are listeners (rows of their own), not the catalog's DaemonPortOptions.
_CALL_MACROS = "|".join(
    spec.m4
    for spec in catalog.OPTIONS.values()
    if spec.kind == catalog.CALL and spec.m4 not in LISTENER_MACROS.values()
)
_CALL = re.compile(rf"(?P<macro>{_CALL_MACROS})\((?P<value>{_ARG})\){_TAIL}")
_FEATURE = re.compile(rf"FEATURE\({_NAME}(?P<args>(?:,[ \t]*{_ARG})*)\){_TAIL}")
_FEATURE_ARG = re.compile(rf",[ \t]*({_ARG})")


_LISTENER = re.compile(rf"(?P<macro>DAEMON_OPTIONS|CLIENT_OPTIONS)\((?P<value>{_ARG})\){_TAIL}")


def _accumulated(before: str | None, segment: OptionDefine) -> str:
    words = (before.split(" ") if before else []) + segment.value.split(" ")
    return " ".join(dict.fromkeys(words))


def _unquote(arg: str) -> str:
    return arg[1:-1] if arg.startswith("`") else arg


@dataclass(frozen=True)
class _Candidate:
    kind: str  # "define", "call", "feature" or "listener"
    name: str
    args: tuple[str, ...]
    tail: str


def _recognise(unit: str) -> _Candidate | None:
    for pattern in (_DEFINE, _SPLIT_DEFINE):
        match = pattern.fullmatch(unit)
        if match:
            name = match["qname"] or match["name"]
            return _Candidate("define", name, (_unquote(match["value"]),), match["tail"])
    match = _LISTENER.fullmatch(unit)
    if match:
        return _Candidate("listener", match["macro"], (_unquote(match["value"]),), match["tail"])
    match = _CALL.fullmatch(unit)
    if match:
        return _Candidate("call", match["macro"], (_unquote(match["value"]),), match["tail"])
    match = _FEATURE.fullmatch(unit)
    if match:
        args = tuple(_unquote(arg) for arg in _FEATURE_ARG.findall(match["args"]))
        return _Candidate("feature", match["qname"] or match["name"], args, match["tail"])
    return None


def _why_not(value_type, value: str, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
    """Why a value read from a file cannot be managed as is ("" if it can)."""
    try:
        cleaned = value_type.clean(value, reserved=reserved, roots=roots)
    except ValidationError as exc:
        return exc.messages[0]
    return "" if cleaned == value else f"the console would write it as ‘{cleaned}’"


def _managed(
    candidate: _Candidate,
    unit: str,
    line: int,
    reserved: frozenset[str],
    roots: tuple[str, ...],
    notes: list[str],
) -> Segment:
    if candidate.kind == "listener":
        kind = "daemon" if candidate.name == "DAEMON_OPTIONS" else "client"
        try:
            spec = parse_listener_value(kind, candidate.args[0], reserved=reserved)
        except ValidationError as exc:
            notes.append(
                f"line {line}: {candidate.name}(‘{candidate.args[0][:60]}’) is kept as written: {exc.messages[0]}"
            )
            return Unmanaged(unit)
        return ListenerDecl(spec, candidate.tail, unit)
    if candidate.kind in ("define", "call"):
        value = candidate.args[0]
        if candidate.kind == "define" and candidate.name == STAMP_MACRO:
            return BuildStamp(value, candidate.tail, unit)
        spec = catalog.BY_M4.get(candidate.name)
        if spec is None or (spec.kind == catalog.CALL) != (candidate.kind == "call"):
            return Unmanaged(unit)
        why = "a value is required" if value == "" else _why_not(spec.type, value, reserved, roots)
        if why:
            notes.append(f"line {line}: {spec.name} ‘{value[:60]}’ is kept as written: {why}")
            return Unmanaged(unit)
        return OptionDefine(candidate.name, value, candidate.tail, unit)
    spec = catalog.FEATURES.get(candidate.name)
    if spec is None:
        notes.append(f"line {line}: FEATURE({candidate.name}) is not in the console's catalog; kept as written")
        return Unmanaged(unit)
    values = catalog.feature_values(candidate.name, candidate.args)
    why = "" if values is not None else "it uses arguments the console does not model"
    for arg_spec, value in zip(spec.args, values or (), strict=False):
        why = why or (value and _why_not(arg_spec.type, value, reserved, roots))
    if not why and catalog.feature_m4_args(candidate.name, values) != catalog.trimmed(candidate.args):
        why = "the console would write its arguments differently"
    if why:
        notes.append(f"line {line}: FEATURE({candidate.name}) is kept as written: {why}")
        return Unmanaged(unit)
    return FeatureDecl(candidate.name, values, candidate.tail, unit)


_SETS_CATALOG_NAME = re.compile(r"\b(?:define|undefine|pushdef|popdef)\(\s*`?([A-Za-z_][A-Za-z0-9_]*)")


def _demote_conflicting(segments: list[Segment], notes: list[str]) -> None:
    """Lines that set one option or FEATURE differently (or DAEMON_OPTIONS, one socket per line,
    given more than once) cannot be one managed value: keep them all as written."""
    groups: dict[tuple[str, str], list[int]] = {}
    for index, segment in enumerate(segments):
        if isinstance(segment, OptionDefine):
            groups.setdefault(("option", segment.name), []).append(index)
        elif isinstance(segment, FeatureDecl):
            groups.setdefault(("feature", segment.name), []).append(index)
    for (kind, name), indexes in groups.items():
        if kind == "option" and catalog.OPTIONS[name].m4 in catalog.ACCUMULATING_CALLS:
            if len(indexes) > 1:
                notes.append(f"{name} is given on {len(indexes)} lines; the console writes them as one line")
            continue
        values = {segments[i].value if kind == "option" else segments[i].args for i in indexes}
        several_sockets = kind == "option" and catalog.OPTIONS[name].kind == catalog.CALL and len(indexes) > 1
        if len(values) > 1 or several_sockets:
            what = name if kind == "option" else f"FEATURE({name})"
            notes.append(f"{what} is given {len(indexes)} times; these lines are kept as written")
            for i in indexes:
                segments[i] = Unmanaged(segments[i].source)


_REST_KEPT = "the rest of the file is kept as written"


def parse_mc(text: str, *, reserved: frozenset[str], roots: tuple[str, ...] = ()) -> McDocument:
    """The file's segments. A value is managed only if its type accepts it as written for this
    instance (`reserved`: its macro names, `roots`: its directories); otherwise it stays verbatim."""
    check_reported(reserved)
    segments: list[Segment] = []
    notes: list[str] = []
    for line, unit, trusted in _constructs(text):
        if not trusted:
            if not notes or not notes[-1].endswith(_REST_KEPT):
                notes.append(f"line {line}: m4's quote or comment characters change here; {_REST_KEPT}")
            segments.append(Unmanaged(unit, trusted=False))
            continue
        candidate = _recognise(unit)
        segment = Unmanaged(unit) if candidate is None else _managed(candidate, unit, line, reserved, roots, notes)
        if isinstance(segment, Unmanaged) and candidate is None and not unit.startswith(("dnl", "#")):
            for name in _SETS_CATALOG_NAME.findall(unit):
                if name in catalog.BY_M4:
                    notes.append(f"line {line}: changes {name} in a way the console does not model; kept as written")
        segments.append(segment)
    _demote_conflicting(segments, notes)
    document = McDocument(segments, notes)
    if document.needs_cf_m4 and _CALLS_OSTYPE.search(text):
        notes.append(
            "this .mc was written for sendmail's own Build (it has no include of cf.m4): the console puts "
            "include(`…/m4/cf.m4') of the instance's cf tree at its top when it builds, as Build runs "
            "m4 ../m4/cf.m4 on it"
        )
    return document


_CALLS_OSTYPE = re.compile(r"^OSTYPE\(", re.MULTILINE)


def declared_paths(text: str) -> list[tuple[str, str]]:
    """(what, path) for every path-typed value the .mc sets with a construct the parser recognises,
    valid or not, managed or kept verbatim: the agent checks them against its roots before it builds
    or installs. A FEATURE written in a form the catalog does not model contributes every word of
    its arguments that starts with `/` (map specs such as `hash -o /path`)."""
    found: list[tuple[str, str]] = []
    for _, unit, trusted in _constructs(text):
        candidate = _recognise(unit) if trusted else None
        if candidate is None:
            continue
        if candidate.kind in ("define", "call"):
            spec = catalog.BY_M4.get(candidate.name)
            if spec is not None:
                found.extend(catalog.path_values({spec.name: candidate.args[0]}, {}))
            continue
        if candidate.name not in catalog.FEATURES:
            continue
        values = catalog.feature_values(candidate.name, candidate.args)
        if values is not None:
            found.extend(catalog.path_values({}, {candidate.name: values}))
        else:
            words = (word for arg in candidate.args for word in arg.split())
            found.extend((f"FEATURE({candidate.name})", word) for word in words if word.startswith("/"))
    return found


def paths_outside(mc_text: str, options: dict[str, str], roots: tuple[str, ...]) -> list[str]:
    """`what=path` for each path-typed value of a build that does not lie under one of `roots`: its
    options (cf name → value, a build's expected_options) and every option or FEATURE line of its
    .mc, the ones kept verbatim included. Empty roots: every path is outside."""
    found = catalog.path_values(options, {}) + declared_paths(mc_text)
    return [f"{what}={path}" for what, path in dict.fromkeys(found) if not under_any(path, roots)]


# ---------------------------------------------------------------------------------------------
# Rendering


def _starts_with_call(segment: Segment, macro: str) -> bool:
    return isinstance(segment, Unmanaged) and segment.text.startswith(macro + "(")


def _feature_text(name: str, args: tuple[str, ...]) -> str:
    quoted = "".join(f", `{arg}'" for arg in catalog.feature_m4_args(name, args))
    return f"FEATURE(`{name}'{quoted})"


def _check_listeners(listeners: list[tuple[ListenerSpec, str]], reserved: frozenset[str]) -> None:
    for spec, comment in listeners:
        if not isinstance(spec, ListenerSpec) or not isinstance(comment, str):
            raise UnsafeValue("a listener must be a (ListenerSpec, comment) pair")
        fields = {
            "name": spec.name,
            "family": spec.family,
            "port": spec.port,
            "address": spec.address,
            "modifiers": spec.modifiers,
            "extra": spec.extra,
        }
        try:
            cleaned = clean_listener(spec.kind, fields, reserved=reserved)
        except ValidationError as exc:
            raise UnsafeValue(f"listener {spec.value()[:80]!r}: {exc.messages[0]}") from None
        if cleaned != spec:
            raise UnsafeValue(f"listener {spec.value()[:80]!r} is not in its cleaned form")
    problems = listener_problems([spec for spec, _ in listeners])
    if problems:
        raise UnsafeValue("; ".join(problems))


_CF_TREE = re.compile(r"(?:/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)+")


def _cf_m4_include(cf_tree: str, reserved: frozenset[str]) -> str:
    if not _CF_TREE.fullmatch(cf_tree) or "/." in cf_tree or len(cf_tree) > 200:
        raise UnsafeValue(f"cf tree {cf_tree[:80]!r}: an absolute path of letters, digits and _ . + - only")
    try:
        # cf.m4 derives _CF_DIR_ from its own file name and m4 reads that text again.
        check_words(cf_tree, reserved)
    except ValidationError as exc:
        raise UnsafeValue(f"cf tree {cf_tree!r}: {exc.message}") from None
    return f"include(`{cf_tree}/m4/cf.m4')dnl\n"


def _check_inputs(
    options: dict[str, str],
    features: dict[str, tuple[str, ...]],
    build_id: str,
    reserved: frozenset[str],
    roots: tuple[str, ...],
) -> None:
    if not BUILD_ID.fullmatch(build_id):
        raise UnsafeValue(f"build id {build_id!r}: letters, digits, and . _ - only (at most 64)")
    try:
        check_reported(reserved)
        check_words(build_id, reserved)
    except ValidationError as exc:
        raise UnsafeValue(f"build id {build_id!r}: {exc.message}") from None
    for name, value in options.items():
        spec = catalog.OPTIONS.get(name)
        if spec is None:
            raise UnsafeValue(f"{name} is not an option in the catalog")
        why = _why_not(spec.type, value, reserved, roots)
        if why:
            raise UnsafeValue(f"{name} ‘{value[:60]}’: {why}")
    problems = catalog.check_features(features, reserved=reserved, roots=roots)
    if problems:
        raise UnsafeValue("; ".join(problems))


# What may define confCF_VERSION before proto.m4 reads it at the end of the input: an OSTYPE or
# DOMAIN file (Debian's debian.m4 and debian-msp.m4 do), a HACK, an include, or a FEATURE the
# catalog does not model (none of the catalog's FEATURE files sets it; test_mcfile checks the tree).
_MAY_SET_STAMP = re.compile(r"(?<![A-Za-z0-9_])(?:OSTYPE|DOMAIN|HACK|s?include|FEATURE)\(\s*`?(?P<name>[\w.-]*)")


def _may_set_stamp(segment: Segment) -> bool:
    if not isinstance(segment, Unmanaged) or segment.text.startswith(("dnl", "#")):
        return False
    for match in _MAY_SET_STAMP.finditer(segment.text):
        if not (match.group(0).startswith("FEATURE") and match["name"] in catalog.FEATURES):
            return True
    return False


def _is_listener_line(segment: Segment) -> bool:
    return isinstance(segment, ListenerDecl) or any(_starts_with_call(segment, m) for m in LISTENER_MACROS.values())


def _place_listeners(doc: McDocument, listeners: list[tuple[ListenerSpec, str]], fallback: int) -> dict[int, list[str]]:
    """Where each listener's line goes: the k-th listener where the file's k-th listener line stood
    (that line byte for byte if it says exactly the same), further ones after the last of them."""
    decls = [(i, s) for i, s in enumerate(doc.segments) if isinstance(s, ListenerDecl)]
    if not decls:
        first = next((i for i, s in enumerate(doc.segments) if _is_listener_line(s)), fallback)
        return {first: [spec.mc_line() + _listener_tail(comment) for spec, comment in listeners]}
    placed: dict[int, list[str]] = {}
    for k, (spec, comment) in enumerate(listeners):
        index, decl = decls[min(k, len(decls) - 1)]
        if k < len(decls) and decl.spec == spec and listener_comment(decl.tail) == comment.strip():
            text = decl.source if decl.source.endswith("\n") else decl.source + "\n"
        else:
            text = spec.mc_line() + _listener_tail(comment)
        placed.setdefault(index, []).append(text)
    return placed


def render_mc(
    doc: McDocument,
    options: dict[str, str],
    features: dict[str, tuple[str, ...]],
    build_id: str,
    *,
    reserved: frozenset[str],
    roots: tuple[str, ...] = (),
    listeners: list[tuple[ListenerSpec, str]] | None = None,
    cf_tree: str | None = None,
) -> str:
    """The .mc for these values: doc's unmanaged text in place, managed lines from the values.

    `listeners` ((spec, comment) pairs, in row order) replace the file's DAEMON_OPTIONS and
    CLIENT_OPTIONS lines where the first of them stood (before the first MAILER if it had none);
    None keeps the file's own. `cf_tree`: the instance's cf tree, whose m4/cf.m4 a .mc written for
    Build (no include of cf.m4) gets at its top.

    Raises UnsafeValue for a value that is not a cleaned catalog value (for this instance's macro
    names `reserved` and directories `roots`) or a FEATURE set m4 would reject: rendering is the
    last point before m4, so it does not trust its callers.
    """
    _check_inputs(options, features, build_id, reserved, roots)
    if listeners is not None:
        _check_listeners(listeners, reserved)
    head = _cf_m4_include(cf_tree, reserved) if cf_tree is not None and doc.needs_cf_m4 else ""
    segments = doc.segments
    features = {name: catalog.trimmed(tuple(args)) for name, args in features.items()}
    ostype = next((i for i, s in enumerate(segments) if _starts_with_call(s, "OSTYPE")), None)
    mailer = next((i for i, s in enumerate(segments) if _starts_with_call(s, "MAILER")), None)
    options_at = [i for i, s in enumerate(segments) if isinstance(s, OptionDefine)]
    stamps_at = [i for i, s in enumerate(segments) if isinstance(s, BuildStamp)]
    end = len(segments)
    # Nothing is inserted after m4's quotes or comment characters change.
    trusted_end = next((i for i, s in enumerate(segments) if isinstance(s, Unmanaged) and not s.trusted), end)
    before: dict[int, list[str]] = {}
    after: dict[int, list[str]] = {}

    # The stamp must be the last definition of confCF_VERSION (debian.m4 and debian-msp.m4 set it).
    stamp = f"define(`{STAMP_MACRO}', `{build_id}')dnl\n"
    setters = [i for i, s in enumerate(segments[:trusted_end]) if _may_set_stamp(s)]
    if setters:
        after.setdefault(setters[-1], []).append(stamp)
    else:
        before.setdefault(stamps_at[0] if stamps_at else mailer if mailer is not None else end, []).append(stamp)

    present = {s.name for s in segments if isinstance(s, OptionDefine)}
    new_options = [
        spec.mc_line(options[name]) + "dnl\n"
        for name, spec in catalog.OPTIONS.items()
        if name in options and name not in present
    ]
    anchors = [i for i in (options_at[-1] if options_at else None, ostype) if i is not None]
    if anchors:
        after.setdefault(max(anchors), []).extend(new_options)
    else:
        before.setdefault(mailer if mailer is not None else end, []).extend(new_options)

    kept = [(i, s.name) for i, s in enumerate(segments) if isinstance(s, FeatureDecl) and s.name in features]
    declared = {name for _, name in kept}
    for name in catalog.feature_order(n for n in features if n not in declared):
        later = [i for i, other in kept if catalog.must_precede(name, other)]
        index = min(later) if later else mailer if mailer is not None else end
        before.setdefault(index, []).append(_feature_text(name, features[name]) + "dnl\n")

    listener_lines = (
        {} if listeners is None else _place_listeners(doc, listeners, mailer if mailer is not None else end)
    )
    for index, lines in listener_lines.items():
        if not isinstance(segments[index] if index < end else None, ListenerDecl):
            before.setdefault(index, []).extend(lines)

    groups: dict[str, int] = {}
    for s in segments:
        if isinstance(s, OptionDefine):
            groups[s.name] = groups.get(s.name, 0) + 1
    written: set[str] = set()
    out: list[str] = [head]

    def emit(text: str, inserted: bool = False) -> None:
        if inserted and out[-1] and not out[-1].endswith("\n"):
            out.append("\n")
        out.append(text)

    for index, segment in enumerate(segments):
        for line in before.get(index, ()):
            emit(line, inserted=True)
        if isinstance(segment, Unmanaged):
            emit(segment.text)
        elif isinstance(segment, ListenerDecl):
            for line in listener_lines.get(index, ()) if listeners is not None else (segment.source,):
                emit(line, inserted=True)
        elif isinstance(segment, OptionDefine) and segment.name in options and segment.name not in written:
            value = options[segment.name]
            spec = catalog.OPTIONS[segment.name]
            if spec.m4 in catalog.ACCUMULATING_CALLS:
                # Every line adds to the class: the whole list goes on the first line.
                written.add(segment.name)
                same = groups[segment.name] == 1 and value == segment.value
                emit(segment.source if same else spec.mc_line(value) + segment.tail)
            else:
                emit(segment.source if value == segment.value else spec.mc_line(value) + segment.tail)
        elif isinstance(segment, FeatureDecl) and segment.name in features:
            args = features[segment.name]
            emit(segment.source if args == segment.args else _feature_text(segment.name, args) + segment.tail)
        for line in after.get(index, ()):
            emit(line, inserted=True)
    for line in before.get(end, ()):
        emit(line, inserted=True)
    return "".join(out)
