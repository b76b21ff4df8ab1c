"""Read a sendmail .mc into the values the catalog manages, and write it back out.

`parse_mc` splits a .mc into segments: the option defines and FEATURE() lines the catalog models
(`OptionDefine`, `FeatureDecl`), the confCF_VERSION build stamp (`BuildStamp`), and everything else
kept byte for byte (`Unmanaged`). It follows m4's quoting, parentheses, `dnl` and comments across
lines, so a line is managed only when it is a whole construct at the top level; anything it is
not sure about stays unmanaged, and `McDocument.notes` says why.

`render_mc` walks the segments again with new values: managed lines are re-emitted (verbatim if
the value did not change), dropped when unset, and new ones inserted where m4 wants them. It is a
pure function: the same document and values always give the same text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from mailadmin.cf import catalog
from mailadmin.cf.m4safe import check_reported, check_words
from mailadmin.cf.paths import under_any

STAMP_MACRO = "confCF_VERSION"
BUILD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class UnsafeValue(ValueError):
    """render_mc was given a value that is not a cleaned, m4-inert catalog value."""


@dataclass(frozen=True)
class Unmanaged:
    text: str


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


Segment = Unmanaged | OptionDefine | FeatureDecl | BuildStamp


@dataclass
class McDocument:
    segments: list[Segment]
    notes: list[str] = field(default_factory=list)

    def options(self) -> dict[str, str]:
        """cf option name → value, for the options this file sets with lines the console manages."""
        return {s.name: s.value for s in self.segments if isinstance(s, OptionDefine)}

    def features(self) -> dict[str, tuple[str, ...]]:
        """FEATURE name → its values (trailing empty ones left out), for managed FEATURE lines."""
        return {s.name: s.args for s in self.segments if isinstance(s, FeatureDecl)}

    def build_stamp(self) -> str | None:
        return next((s.value for s in self.segments if isinstance(s, BuildStamp)), None)

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
_CALL_MACROS = "|".join(spec.m4 for spec in catalog.OPTIONS.values() if spec.kind == catalog.CALL)
_CALL = re.compile(rf"(?P<macro>{_CALL_MACROS})\((?P<value>{_ARG})\){_TAIL}")
_FEATURE = re.compile(rf"FEATURE\({_NAME}(?P<args>(?:,[ \t]*{_ARG})*)\){_TAIL}")
_FEATURE_ARG = re.compile(rf",[ \t]*({_ARG})")


def _unquote(arg: str) -> str:
    return arg[1:-1] if arg.startswith("`") else arg


@dataclass(frozen=True)
class _Candidate:
    kind: str  # "define", "call" or "feature"
    name: str
    args: tuple[str, ...]
    tail: str


def _recognise(unit: str) -> _Candidate | None:
    for pattern in (_DEFINE, _SPLIT_DEFINE):
        match = pattern.fullmatch(unit)
        if match:
            name = match["qname"] or match["name"]
            return _Candidate("define", name, (_unquote(match["value"]),), match["tail"])
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
            segments.append(Unmanaged(unit))
            continue
        candidate = _recognise(unit)
        segment = Unmanaged(unit) if candidate is None else _managed(candidate, unit, line, reserved, roots, notes)
        if isinstance(segment, Unmanaged) and candidate is None and not unit.startswith(("dnl", "#")):
            for name in _SETS_CATALOG_NAME.findall(unit):
                if name in catalog.BY_M4:
                    notes.append(f"line {line}: changes {name} in a way the console does not model; kept as written")
        segments.append(segment)
    _demote_conflicting(segments, notes)
    return McDocument(segments, notes)


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


def render_mc(
    doc: McDocument,
    options: dict[str, str],
    features: dict[str, tuple[str, ...]],
    build_id: str,
    *,
    reserved: frozenset[str],
    roots: tuple[str, ...] = (),
) -> str:
    """The .mc for these values: doc's unmanaged text in place, managed lines from the values.

    Raises UnsafeValue for a value that is not a cleaned catalog value (for this instance's macro
    names `reserved` and directories `roots`) or a FEATURE set m4 would reject: rendering is the
    last point before m4, so it does not trust its callers.
    """
    _check_inputs(options, features, build_id, reserved, roots)
    segments = doc.segments
    features = {name: catalog.trimmed(tuple(args)) for name, args in features.items()}
    ostype = next((i for i, s in enumerate(segments) if _starts_with_call(s, "OSTYPE")), None)
    mailer = next((i for i, s in enumerate(segments) if _starts_with_call(s, "MAILER")), None)
    options_at = [i for i, s in enumerate(segments) if isinstance(s, OptionDefine)]
    stamps_at = [i for i, s in enumerate(segments) if isinstance(s, BuildStamp)]
    end = len(segments)
    before: dict[int, list[str]] = {}
    after: dict[int, list[str]] = {}

    # debian.m4 sets confCF_VERSION itself, so the stamp must follow OSTYPE to win.
    stamp = f"define(`{STAMP_MACRO}', `{build_id}')dnl\n"
    if ostype is not None:
        after.setdefault(ostype, []).append(stamp)
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

    out: list[str] = []

    def emit(text: str, inserted: bool = False) -> None:
        if inserted and out and not out[-1].endswith("\n"):
            out.append("\n")
        out.append(text)

    for index, segment in enumerate(segments):
        for line in before.get(index, ()):
            emit(line, inserted=True)
        if isinstance(segment, Unmanaged):
            emit(segment.text)
        elif isinstance(segment, OptionDefine) and segment.name in options:
            value = options[segment.name]
            spec = catalog.OPTIONS[segment.name]
            emit(segment.source if value == segment.value else spec.mc_line(value) + segment.tail)
        elif isinstance(segment, FeatureDecl) and segment.name in features:
            args = features[segment.name]
            emit(segment.source if args == segment.args else _feature_text(segment.name, args) + segment.tail)
        for line in after.get(index, ()):
            emit(line, inserted=True)
    for line in before.get(end, ()):
        emit(line, inserted=True)
    return "".join(out)
