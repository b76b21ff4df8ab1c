"""Typed values that come out of m4 exactly as they went in.

sendmail's cf macros rescan a define()d value two to four times, so quoting it once proves
nothing (reference/RELIABILITY.md §0, §3). m4 changes text in only four ways: quote characters,
comment characters, words that name a macro, and `$n` inside a macro body. A value holding none
of these is a fixed point of m4 expansion however often it is rescanned, so every type here
refuses them before its own grammar runs:

- characters m4, sendmail.cf, a shell or the access map read as syntax (quotes, brackets,
  comma, `$`, `#`, `\\`, shell metacharacters), whitespace, control characters and non-ASCII;
- any m4 word (`[A-Za-z_][A-Za-z0-9_]*`) that is a macro name: GNU m4's builtins plus every
  name the installed cf tree can define. Those `reserved` words are data here: the host's agent
  computes them from its own m4 and cf tree (mailadmin.mta.macronames) and reports them, and
  the console passes them in from `MailServer.reserved_words`. This module runs nothing.

A path-typed value must also lie under one of the instance's `roots` (the conf, cert, queue,
run and log directories its agent declares): PidFile=/etc/shadow would have root's sendmail
overwrite that file.

After m4 has run, `check_rendered` / `missing_lines` prove each value reached sendmail.cf verbatim;
that oracle also catches a name defined by an imported .mc that no rule here could know about.
"""

from __future__ import annotations

import ipaddress
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable

from django.core.exceptions import ValidationError

from mailadmin.cf.paths import under_any

MAX_LENGTH = 512
M4_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# What each forbidden character is, and why it may not reach m4, sendmail.cf or the access map.
_FORBIDDEN: dict[str, tuple[str, str, str]] = {
    "`": ("a backquote (`)", "m4's opening quote", "quote"),
    "'": ("a single quote (')", "m4's closing quote", "quote"),
    '"': ('a double quote (")', "sendmail and shell quoting", "quote"),
    "(": ("a parenthesis", "it opens m4 macro arguments", "bracket"),
    ")": ("a parenthesis", "it closes m4 macro arguments", "bracket"),
    "[": ("a square bracket", "allowed only around an address literal such as [192.0.2.1]", "bracket"),
    "]": ("a square bracket", "allowed only around an address literal such as [192.0.2.1]", "bracket"),
    "{": ("a curly brace", "sendmail macro syntax", "bracket"),
    "}": ("a curly brace", "sendmail macro syntax", "bracket"),
    "<": ("an angle bracket", "sendmail and shell syntax", "bracket"),
    ">": ("an angle bracket", "sendmail and shell syntax", "bracket"),
    ",": ("a comma", "it separates m4 arguments", "comma"),
    "$": ("a dollar sign", "sendmail macro syntax", "dollar"),
    "#": ("a hash sign", "it starts a comment in sendmail.cf and in m4", "hash"),
    "\\": ("a backslash", "an escape character for sendmail and the shell", "backslash"),
    "%": ("a percent sign", "sendmail expands %-sequences in map lookups", "percent"),
    ";": ("a semicolon", "a shell metacharacter", "shell_character"),
    "|": ("a pipe sign", "a shell metacharacter", "shell_character"),
    "&": ("an ampersand", "a shell metacharacter", "shell_character"),
    "*": ("an asterisk", "a shell metacharacter", "shell_character"),
    "?": ("a question mark", "a shell metacharacter", "shell_character"),
}

# Every rule a value can break, by the ValidationError code it raises.
RULE_CODES = frozenset(
    {code for _, _, code in _FORBIDDEN.values()}
    | {
        "not_text",
        "required",
        "too_long",
        "line_break",
        "control_character",
        "not_ascii",
        "whitespace",
        "macro_name",
        "invalid",
        "out_of_range",
        "choice",
        "empty_item",
        "duplicate",
        "too_many",
        "not_reported",
        "no_roots",
        "outside_roots",
    }
)

NOT_REPORTED = "the host's agent has not reported its cf tree's macro names yet"
NO_ROOTS = "the host's agent has not declared its directories"


def _shown(character: str) -> str:
    return f"U+{ord(character):04X}" if not character.isprintable() else f"U+{ord(character):04X} “{character}”"


def check_length(raw: str, limit: int) -> None:
    if len(raw) > limit:
        raise ValidationError(f"Is {len(raw)} characters long; at most {limit} are allowed.", code="too_long")


def check_characters(raw: str, allowed: str = "") -> None:
    """The characters no value may carry into m4, except those a type's own grammar uses."""
    for character in raw:
        if character in allowed:
            continue
        if character in "\r\n":
            raise ValidationError(
                f"Contains a line break ({_shown(character)}) — it would add a line to sendmail.cf "
                "or a row to the access map.",
                code="line_break",
            )
        code_point = ord(character)
        if code_point < 0x20 or code_point == 0x7F:
            raise ValidationError(
                f"Contains a control character ({_shown(character)}) — not allowed in sendmail option values.",
                code="control_character",
            )
        if code_point > 0x7E:
            raise ValidationError(
                f"Contains a non-ASCII character ({_shown(character)}) — only plain ASCII is allowed "
                "(write an international domain name in its xn-- form).",
                code="not_ascii",
            )
        if character == " ":
            raise ValidationError(
                "Contains a space — not allowed in sendmail option values.",
                code="whitespace",
            )
        if character in _FORBIDDEN:
            what, why, code = _FORBIDDEN[character]
            raise ValidationError(
                f"Contains {what} — not allowed in sendmail option values ({why}).",
                code=code,
            )


def check_reported(reserved: frozenset[str]) -> None:
    """Refuse to judge any value without the agent's macro names: an empty set would pass them all."""
    if not reserved:
        raise ValidationError(f"Cannot be checked: {NOT_REPORTED}.", code="not_reported")


def check_words(value: str, reserved: frozenset[str]) -> None:
    """Refuse any m4 word that names a macro: m4 would replace it, with or without parentheses."""
    for word in M4_WORD.findall(value):
        if word == "dnl" or word in reserved:
            raise ValidationError(
                f"‘{word}’ is an m4 macro name: m4 would rewrite it while building sendmail.cf.",
                code="macro_name",
            )


# ---------------------------------------------------------------------------------------------
# Value types


class ValueType(ABC):
    """A kind of value an administrator types; `clean` returns the text that goes into the .mc.

    Every type applies the global rules (length, characters, macro-name words) before its own
    grammar, and checks the words of its result again, since a type may normalise (lower-case).
    """

    name = "value"
    max_length = MAX_LENGTH
    # Characters this type's own grammar uses, exempt from the global character rule.
    allowed_characters = ""

    def __init__(self, *, required: bool = True):
        self.required = required

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def present(self, raw: str) -> bool:
        """False for an allowed empty value; raises for a missing required one or non-text."""
        if not isinstance(raw, str):
            raise ValidationError(f"Must be text, not {type(raw).__name__}.", code="not_text")
        if raw == "" and self.required:
            raise ValidationError("A value is required.", code="required")
        return raw != ""

    def clean(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...] = ()) -> str:
        """The cleaned value, or ValidationError naming the rule `raw` breaks.

        `reserved` is the instance's macro names (m4 builtins and its cf tree's names, as its agent
        reported them); `roots` the directories its agent declared, under which a path must lie.
        """
        check_reported(reserved)
        if not self.present(raw):
            return ""
        check_length(raw, self.max_length)
        check_characters(raw, self.allowed_characters)
        check_words(raw, reserved)
        value = self.clean_value(raw, reserved=reserved, roots=roots)
        check_words(value, reserved)
        return value

    @abstractmethod
    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        """The type's own grammar, on text that already passed the global rules."""

    def paths(self, value: str) -> tuple[str, ...]:
        """The host paths in a cleaned value (empty for types that name no file)."""
        return ()

    @abstractmethod
    def describe(self) -> str:
        """One line for help texts and form placeholders."""

    def invalid(self, message: str, code: str = "invalid") -> ValidationError:
        return ValidationError(f"{message} Expected {self.describe()}.", code=code)


_PATH = re.compile(r"/(?:[A-Za-z0-9_.+-]+/)*[A-Za-z0-9_.+-]+")


def check_roots(path: str, roots: tuple[str, ...]) -> None:
    """A path the instance's sendmail (root) opens, writes or runs must lie under one of its roots:
    resolved with symlinks followed, so a link inside a root that points out of it is refused too."""
    if not roots:
        raise ValidationError(f"Cannot be checked: {NO_ROOTS}.", code="no_roots")
    if not under_any(path, roots):
        raise ValidationError(
            f"{path} is outside this instance's directories; a path must lie under one of: {', '.join(roots)}.",
            code="outside_roots",
        )


class PathValue(ValueType):
    """An absolute path in canonical form: no `.`, `..` or empty components, no trailing slash."""

    name = "path"
    max_length = 255

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        if not raw.startswith("/"):
            raise self.invalid("Is not an absolute path (it must start with /).")
        components = raw.split("/")[1:]
        if ".." in components:
            raise self.invalid("Contains a “..” component.")
        if "." in components or "" in components:
            raise self.invalid("Is not in canonical form (no “.”, empty components or trailing slash).")
        if not _PATH.fullmatch(raw):
            raise self.invalid("Contains characters other than letters, digits, and _ . + - /.")
        check_roots(raw, roots)
        return raw

    def paths(self, value: str) -> tuple[str, ...]:
        return (value,) if value else ()

    def describe(self) -> str:
        return "an absolute path such as /etc/mail/certs/server.pem"


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _hostname(raw: str, *, value_type: ValueType) -> str:
    host = raw.lower()
    if len(host) > 253:
        raise value_type.invalid("Is longer than the 253 characters a host name may have.")
    labels = host.split(".")
    if "" in labels:
        raise value_type.invalid("Has an empty label (a leading, trailing or doubled dot).")
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise value_type.invalid(
                f"‘{label}’ is not a host name label: 1-63 letters, digits or hyphens, "
                "not starting or ending with a hyphen."
            )
    if labels[-1].isdigit():
        raise value_type.invalid("Ends in an all-numeric label, so it reads as an IP address, not a host name.")
    return host


class HostnameValue(ValueType):
    """An RFC 1123 host name (FQDN or single label), lower-cased: sendmail ignores case anyway,
    and lower case keeps upper-case sendmail macro names (ALIAS_FILE…) out of play."""

    name = "hostname"
    max_length = 253

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        return _hostname(raw, value_type=self)

    def describe(self) -> str:
        return "a host name such as mail.example.com"


def _ipv4(text: str) -> str | None:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return None
    # ipaddress accepts only dotted decimal without leading zeros, so str() gives the input back.
    return str(address)


def _ipv6(text: str) -> str | None:
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        return None


SMTP_MAILERS = ("esmtp", "smtp", "smtp8", "dsmtp", "relay")


class RelayValue(ValueType):
    """Where to relay: a host name, `[IPv4]`, `[IPv6:address]` or `[host name]` (brackets: no MX
    lookup), optionally with an SMTP mailer in front (`esmtp:[192.0.2.1]`) when allow_mailer."""

    name = "relay host"
    allowed_characters = "[]:"

    def __init__(self, *, allow_mailer: bool = False, required: bool = True):
        super().__init__(required=required)
        self.allow_mailer = allow_mailer

    def __repr__(self) -> str:
        return f"RelayValue(allow_mailer={self.allow_mailer})"

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        mailer, colon, target = raw.partition(":")
        if colon and mailer.lower() in SMTP_MAILERS:
            if not self.allow_mailer:
                raise self.invalid("This option takes a host, not a mailer:host pair.")
            prefix = mailer.lower() + ":"
        else:
            prefix, target = "", raw
        if target.startswith("[") and target.endswith("]"):
            inner = target[1:-1]
            if inner[:5].lower() == "ipv6:":
                address = _ipv6(inner[5:])
                if address is None:
                    raise self.invalid(f"‘{inner[5:]}’ is not an IPv6 address.")
                return f"{prefix}[IPv6:{address}]"
            if re.fullmatch(r"[0-9.]+", inner):
                address = _ipv4(inner)
                if address is None:
                    raise self.invalid(f"‘{inner}’ is not an IPv4 address in dotted decimal.")
                return f"{prefix}[{address}]"
            return f"{prefix}[{_hostname(inner, value_type=self)}]"
        if any(c in target for c in "[]:"):
            raise self.invalid(
                "Brackets are allowed only around a whole address literal, and a colon only after a mailer "
                f"({', '.join(SMTP_MAILERS)}) or inside [IPv6:…]."
            )
        return prefix + _hostname(target, value_type=self)

    def describe(self) -> str:
        forms = "a host name, [192.0.2.1], [IPv6:2001:db8::1] or [mail.example.com]"
        return forms + (", optionally after a mailer such as esmtp:" if self.allow_mailer else "")


class NumberValue(ValueType):
    """A whole number in [minimum, maximum], written without leading zeros or a sign."""

    name = "number"

    def __init__(self, minimum: int = 0, maximum: int = 999_999_999, *, required: bool = True):
        super().__init__(required=required)
        self.minimum, self.maximum = minimum, maximum

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.minimum}, {self.maximum})"

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        pattern = r"-?(?:0|[1-9][0-9]{0,9})" if self.minimum < 0 else r"0|[1-9][0-9]{0,9}"
        if not re.fullmatch(pattern, raw):
            raise self.invalid("Is not a whole number written in plain digits.")
        number = int(raw)
        if not self.minimum <= number <= self.maximum:
            raise self.invalid(f"{number} is out of range.", code="out_of_range")
        return str(number)

    def describe(self) -> str:
        return f"a whole number from {self.minimum} to {self.maximum}"


class MillisecondsValue(NumberValue):
    name = "milliseconds"

    def __init__(self, minimum: int = 0, maximum: int = 600_000, *, required: bool = True):
        super().__init__(minimum, maximum, required=required)

    def describe(self) -> str:
        return f"a pause in milliseconds from {self.minimum} to {self.maximum} (5000 = 5 seconds)"


_INTERVAL_PART = re.compile(r"(0|[1-9][0-9]{0,8})([smhdw])")
_UNIT_ORDER = "wdhms"
_UNIT_NAMES = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class IntervalValue(ValueType):
    """A sendmail time: digits with a unit (s m h d w), units combined largest first (1h30m),
    or a bare number in the option's default unit (None: the unit is required)."""

    name = "interval"

    def __init__(self, default_unit: str | None = "m", *, required: bool = True):
        super().__init__(required=required)
        self.default_unit = default_unit

    def __repr__(self) -> str:
        return f"IntervalValue({self.default_unit!r})"

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        if re.fullmatch(r"0|[1-9][0-9]{0,8}", raw):
            if self.default_unit is None:
                raise self.invalid("Has no unit.")
            return raw
        position, units = 0, []
        for match in _INTERVAL_PART.finditer(raw):
            if match.start() != position:
                break
            units.append(match.group(2))
            position = match.end()
        if position != len(raw) or not units:
            raise self.invalid("Is not a sendmail time.")
        if len(set(units)) != len(units) or units != sorted(units, key=_UNIT_ORDER.index):
            raise self.invalid("Gives a unit twice or out of order (write 1h30m, not 30m1h).")
        return raw

    def describe(self) -> str:
        if self.default_unit is None:
            return "a time with its unit, such as 30m, 3h or 1h30m"
        return f"a time such as 30s, 15m, 1h30m or 2d (a bare number means {_UNIT_NAMES[self.default_unit]})"


class EnumValue(ValueType):
    """One of a fixed list; matched without regard to case, returned in its canonical spelling."""

    name = "choice"

    def __init__(self, choices: Iterable[str], *, required: bool = True):
        super().__init__(required=required)
        self.choices = tuple(choices)
        self._by_folded = {choice.lower(): choice for choice in self.choices}

    def __repr__(self) -> str:
        return f"EnumValue({self.choices!r})"

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        try:
            return self._by_folded[raw.lower()]
        except KeyError:
            raise self.invalid(f"‘{raw[:40]}’ is not one of the choices.", code="choice") from None

    def describe(self) -> str:
        if len(self.choices) > 8:
            return f"one of {len(self.choices)} keywords such as {', '.join(self.choices[:3])}"
        return "one of " + ", ".join(self.choices)


class BoolValue(EnumValue):
    name = "true/false"

    def __init__(self, *, required: bool = True):
        super().__init__(("True", "False"), required=required)

    def __repr__(self) -> str:
        return "BoolValue()"

    def describe(self) -> str:
        return "True or False"


class FlagValue(ValueType):
    """A FEATURE argument that is one fixed word or nothing (ratecontrol's `nodelay', `terminate'):
    shown as a checkbox labelled with what it does, stored as the word when ticked.

    Matched exactly: the feature files compare some of these words case-sensitively
    (ratecontrol.m4 takes `terminate' but prints *** ERROR for `Terminate')."""

    name = "flag"

    def __init__(self, word: str, label: str, meaning: str):
        super().__init__()  # an unticked flag is an empty argument, which the FEATURE's ArgSpec allows
        if not M4_WORD.fullmatch(word):
            raise ValueError(f"a flag is one m4 word, not {word!r}")
        self.word, self.label, self.meaning = word, label, meaning

    def __repr__(self) -> str:
        return f"FlagValue({self.word!r})"

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        if raw != self.word:
            raise self.invalid(f"‘{raw[:40]}’ is not one of the choices.", code="choice")
        return raw

    def describe(self) -> str:
        return f"‘{self.word}’ or nothing"


_WORD = re.compile(r"[A-Za-z0-9_-]{1,64}")


class WordValue(ValueType):
    """A name such as a milter or daemon name: letters, digits, _ and -."""

    name = "name"
    max_length = 64

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        if not _WORD.fullmatch(raw):
            raise self.invalid("Contains characters other than letters, digits, _ and -.")
        return raw

    def describe(self) -> str:
        return "a name of letters, digits, _ and - (at most 64)"


_ARGUMENT = re.compile(r"[A-Za-z0-9_.+=/-]{1,64}")


class ArgumentValue(ValueType):
    """One argv element of a mailer program (local_lmtp's A= field): no $-macros, no quoting."""

    name = "argument"
    max_length = 64

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        if not _ARGUMENT.fullmatch(raw):
            raise self.invalid("Contains characters other than letters, digits, and _ . + = / -.")
        if ".." in raw:
            raise self.invalid("Contains “..”: no parent-directory references.")
        return raw

    def describe(self) -> str:
        return "a program argument of letters, digits and _ . + = / - (at most 64)"


_CIPHER_ELEMENT = re.compile(r"[!+-]?[A-Za-z0-9@][A-Za-z0-9._=+@-]*")


class CipherListValue(ValueType):
    """An OpenSSL cipher string such as HIGH:!aNULL:!MD5 or DEFAULT@SECLEVEL=2 (`:`-separated)."""

    name = "cipher list"

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        for element in raw.split(":"):
            if not _CIPHER_ELEMENT.fullmatch(element):
                raise self.invalid(f"‘{element[:40]}’ is not a cipher list element.")
        return raw

    def describe(self) -> str:
        return "an OpenSSL cipher list such as HIGH:!aNULL:!MD5"


_LOCAL_PART = re.compile(r"(?![.-])[A-Za-z0-9._+-]{1,64}(?<!\.)")


class MailboxValue(ValueType):
    """A mail address, `user` or `user@host`, without comments, quoting or routes."""

    name = "address"

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        local, at, domain = raw.partition("@")
        if not _LOCAL_PART.fullmatch(local) or ".." in local:
            raise self.invalid(f"‘{local[:40]}’ is not a plain mailbox name.")
        return f"{local}@{_hostname(domain, value_type=self)}" if at else local

    def describe(self) -> str:
        return "a mailbox such as postmaster or hostmaster@example.com"


class AddressOrNetworkValue(ValueType):
    """What an access-map row matches: an IPv4 address or network prefix (10.1, 192.168.2),
    `IPv6:` plus an address or prefix (as the access map writes it), or a domain."""

    name = "address or network"
    allowed_characters = ":"

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        if raw[:5].lower() == "ipv6:":
            rest = raw[5:]
            address = _ipv6(rest)
            if address is not None:
                return "IPv6:" + address
            if re.fullmatch(r"[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6}", rest):
                return "IPv6:" + rest.lower()
            raise self.invalid(f"‘{rest[:45]}’ is not an IPv6 address or prefix.")
        if ":" in raw:
            raise self.invalid("Write an IPv6 address with the IPv6: prefix (IPv6:2001:db8::1).")
        if re.fullmatch(r"[0-9.]+", raw):
            octets = raw.split(".")
            if len(octets) > 4 or "" in octets:
                raise self.invalid(f"‘{raw[:45]}’ is not an IPv4 address or network prefix.")
            for octet in octets:
                if not re.fullmatch(r"0|[1-9][0-9]{0,2}", octet) or int(octet) > 255:
                    raise self.invalid(f"‘{octet}’ is not an octet from 0 to 255.")
            return raw
        return _hostname(raw, value_type=self)

    def describe(self) -> str:
        return "an IPv4 address or prefix (192.0.2.1, 10.1), IPv6:2001:db8::1, or a domain"


class ChoiceOrPathValue(ValueType):
    """A keyword from a list, or an absolute path (DHParameters: `none`, `i`, … or a file)."""

    name = "keyword or path"

    def __init__(self, choices: Iterable[str], *, required: bool = True):
        super().__init__(required=required)
        self.keywords = EnumValue(choices)
        self.path = PathValue()

    def __repr__(self) -> str:
        return f"ChoiceOrPathValue({self.keywords.choices!r})"

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        if raw.startswith("/"):
            return self.path.clean(raw, reserved=reserved, roots=roots)
        try:
            return self.keywords.clean_value(raw, reserved=reserved, roots=roots)
        except ValidationError:
            raise self.invalid(f"‘{raw[:40]}’ is neither a keyword nor an absolute path.", code="choice") from None

    def paths(self, value: str) -> tuple[str, ...]:
        return (value,) if value.startswith("/") else ()

    def describe(self) -> str:
        return f"{self.keywords.describe()}, or {self.path.describe()}"


_LIST_SEPARATORS = re.compile(r"[ ,]+")


class ListValue(ValueType):
    """Items typed separated by commas or spaces; each is cleaned by item_type and the result is
    joined with `separator`. This is the only way a comma reaches m4: between validated items."""

    name = "list"

    def __init__(self, item_type: ValueType, separator: str = ",", *, max_items: int = 32, required: bool = True):
        super().__init__(required=required)
        self.item_type = item_type
        self.separator = separator
        self.max_items = max_items

    def __repr__(self) -> str:
        return f"ListValue({self.item_type!r}, {self.separator!r})"

    def clean(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...] = ()) -> str:
        # Each item gets the global rules from its own type, so an error names the item.
        check_reported(reserved)
        if not self.present(raw):
            return ""
        check_length(raw, self.max_length)
        return self.clean_value(raw, reserved=reserved, roots=roots)

    def paths(self, value: str) -> tuple[str, ...]:
        items = value.split(self.separator) if value else []
        return tuple(path for item in items for path in self.item_type.paths(item))

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        if raw[0] in " ," or raw[-1] in " ,":
            raise ValidationError("Starts or ends with a separator.", code="empty_item")
        if re.search(r" *, *, *", raw):
            raise ValidationError("Has an empty item (two commas in a row).", code="empty_item")
        items = _LIST_SEPARATORS.split(raw)
        if len(items) > self.max_items:
            raise ValidationError(f"Has {len(items)} items; at most {self.max_items} are allowed.", code="too_many")
        cleaned: list[str] = []
        for number, item in enumerate(items, 1):
            try:
                value = self.item_type.clean(item, reserved=reserved, roots=roots)
            except ValidationError as exc:
                raise ValidationError(f"Item {number}: {exc.message}", code=exc.code) from None
            if value in cleaned:
                raise ValidationError(f"Item {number} (‘{value}’) is listed twice.", code="duplicate")
            cleaned.append(value)
        return self.separator.join(cleaned)

    def describe(self) -> str:
        return f"a list of {self.item_type.describe()}, separated by commas or spaces"


_DAEMON_KEYS = {
    "name": "Name",
    "family": "Family",
    "port": "Port",
    "addr": "Addr",
    "m": "M",
    "modifiers": "M",
}
_DAEMON_MODIFIERS = "abcfsuACEOS"


class _PortValue(ValueType):
    name = "port"

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        if raw.lower() in ("smtp", "submission", "smtps"):
            return raw.lower()
        return NumberValue(1, 65535).clean_value(raw, reserved=reserved, roots=roots)

    def describe(self) -> str:
        return "a port number from 1 to 65535, or smtp, submission or smtps"


class _ListenAddressValue(ValueType):
    name = "listen address"
    allowed_characters = ":"

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        address = _ipv4(raw) or _ipv6(raw)
        if address is None:
            raise self.invalid(f"‘{raw[:45]}’ is not an IP address.")
        return address

    def describe(self) -> str:
        return "an IPv4 or IPv6 address such as 127.0.0.1 or ::1"


class _ModifiersValue(ValueType):
    name = "modifiers"

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        if any(letter not in _DAEMON_MODIFIERS for letter in raw) or len(set(raw)) != len(raw):
            raise self.invalid("Has a letter that is not a daemon modifier, or one given twice.")
        return raw

    def describe(self) -> str:
        return f"daemon modifier letters from {_DAEMON_MODIFIERS}, each at most once"


class DaemonPortValue(ValueType):
    """One listening socket, DaemonPortOptions=Name=…,Family=…,Port=…,Addr=…,M=….

    Each field is validated on its own and the value is re-assembled here, so the commas in the
    result are the console's, never the user's. Fields keep the order they were given in."""

    name = "daemon options"
    allowed_characters = ",= :"
    FIELDS: dict[str, ValueType] = {
        "Name": WordValue(),
        "Family": EnumValue(("inet", "inet6")),
        "Port": _PortValue(),
        "Addr": _ListenAddressValue(),
        "M": _ModifiersValue(),
    }

    def clean_value(self, raw: str, *, reserved: frozenset[str], roots: tuple[str, ...]) -> str:
        fields: dict[str, str] = {}
        for part in re.split(r" *, *", raw):
            key, equals, value = part.partition("=")
            canonical = _DAEMON_KEYS.get(key.lower())
            if not equals or canonical is None:
                raise self.invalid(f"‘{part[:40]}’ is not one of Name=, Family=, Port=, Addr=, M=.")
            if canonical in fields:
                raise ValidationError(f"{canonical}= is given twice.", code="duplicate")
            try:
                fields[canonical] = self.FIELDS[canonical].clean(value, reserved=reserved, roots=roots)
            except ValidationError as exc:
                raise ValidationError(f"{canonical}=: {exc.message}", code=exc.code) from None
        if "Port" not in fields:
            raise self.invalid("Has no Port=.")
        if "Family" in fields and "Addr" in fields:
            family = "inet6" if ":" in fields["Addr"] else "inet"
            if fields["Family"] != family:
                raise self.invalid(f"Addr={fields['Addr']} does not belong to Family={fields['Family']}.")
        return ",".join(f"{key}={value}" for key, value in fields.items())

    def compose(self, fields: dict[str, str], *, reserved: frozenset[str], roots: tuple[str, ...] = ()) -> str:
        """The cleaned value from separate form fields (empty ones left out)."""
        return self.clean(",".join(f"{k}={v}" for k, v in fields.items() if v), reserved=reserved, roots=roots)

    def fields(self, value: str) -> dict[str, str]:
        """A cleaned value split back into its fields, for a form to show."""
        return dict(part.split("=", 1) for part in value.split(",")) if value else {}

    def describe(self) -> str:
        return "Port=…, optionally Addr=, Name=, Family= and M= (e.g. Port=25,Addr=127.0.0.1,Name=MTA)"


# ---------------------------------------------------------------------------------------------
# The oracle


def missing_lines(cf_text: str, expected: Iterable[str]) -> list[str]:
    """The expected lines that sendmail.cf does not contain verbatim."""
    present = set(cf_text.splitlines())
    return [line for line in expected if line not in present]


def check_rendered(cf_text: str, expected: dict[str, str]) -> list[str]:
    """For each cf option name → value, the line `O Name=value` a built cf lacks (empty: all there)."""
    return missing_lines(cf_text, (f"O {name}={value}" for name, value in expected.items()))


def _stamp_free(cf_text: str) -> list[str]:
    # makeinfo's `#####` banner carries the build time and directory; DZ carries the build id.
    return [line for line in cf_text.splitlines() if not line.startswith(("#####", "DZ"))]


def unexpected_changes(baseline_cf: str, cf_text: str, allowed_prefixes: Iterable[str]) -> list[str]:
    """Lines added or removed compared with a baseline build, other than lines about the options
    being set (those starting with one of allowed_prefixes, with or without a leading `#`)."""
    prefixes = tuple(allowed_prefixes)
    before, after = Counter(_stamp_free(baseline_cf)), Counter(_stamp_free(cf_text))
    removed = [f"- {line}" for line in sorted((before - after).elements())]
    added = [f"+ {line}" for line in sorted((after - before).elements())]
    return [change for change in removed + added if not change[2:].lstrip("#").startswith(prefixes)]
