"""The access map: typed rows → the text makemap compiles.

Every key and value is checked against its tag's type before it can reach makemap: a newline
or tab in a value would add a row of its own (a GreetPause value `5000⏎Connect:10 RELAY` opens
relaying for 10/8), so nothing but the characters a type allows gets through.

The TLS policy values are the requirement the TLS_connection rule set reads (tls_client for
TLS_Clt:, tls_server for TLS_Srv:, tls_rcpt for TLS_Rcpt:, all three through it; cf/README
"STARTTLS", proto.m4): `[PERM+|TEMP+](VERIFY[:bits]|ENCR:bits)[+ext[++ext]...]` with the
extensions CN, CN:name, CS:subject, CI:issuer and CITag:tag. Srv_Features: and Clt_Features:
values are the option letters of the srv_features and clt_features rule sets (op guide 5.1.4.12
and 5.1.4.17), one letter a word: sendmail reads only the first character of each word.
Debian 12's cf (8.17.1) looks Clt_Features: up under ${client_name}, empty while sending, so
there only the default row (empty key) applies; 8.17.2 looks up the server's name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from django.core.exceptions import ValidationError

HOST_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
DOMAIN = re.compile(rf"^\.?{HOST_LABEL}(\.{HOST_LABEL})*\.?$")
NETWORK_PREFIX = re.compile(r"^\d{1,3}(\.\d{1,3}){0,3}$")
LOCAL_PART = re.compile(r"^[A-Za-z0-9!%&*+/=?^_{|}~.-]{1,64}$")
ACTIONS = ("OK", "RELAY", "REJECT", "DISCARD")
# sendmail matches these words case-insensitively; rows are written in the case cf/README uses.
TLS_REQUIREMENT = re.compile(
    r"^(?:(?P<severity>PERM|TEMP)\+)?(?P<kind>VERIFY|ENCR)(?::(?P<bits>\d{1,4}))?(?:\+(?P<extensions>.*))?$",
    re.IGNORECASE | re.DOTALL,
)
# Certificate names as sendmail holds them in ${cn_subject}, ${cert_subject} and ${cert_issuer}:
# spaces, <>()"+ and non-printable characters arrive as +XX (cf/README "Relaying"), so a value
# needs none of them raw. A raw `+` could only start the `++` that separates extensions.
ENCODED = r"\+[0-9A-Fa-f]{2}"
CERT_NAME = re.compile(rf"^(?:[A-Za-z0-9._*@=-]|{ENCODED})+$")
CERT_DN = re.compile(rf"^/(?:[A-Za-z0-9/._*@=:-]|{ENCODED})+$")
# CITag's tag is one sendmail token ($- in TLS_req): no operator characters.
CERT_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
EXTENSION_NAMES = {"cn": "CN", "cs": "CS", "ci": "CI", "citag": "CITag"}
# srv_features: the letters the op guide (5.1.4.17) lists; upper case turns a feature off, lower on.
SRV_FEATURE_LETTERS = "AaBbCcDdEehLlPpSsVvXx"
# clt_features: sendmail sets {client_flags} from the words and tests only these upper-case flags
# (A: no AUTH, D: no DANE, M: no MTA-STS, S: no STARTTLS); any other letter is silently ignored.
CLT_FEATURE_LETTERS = "ADMS"


def _address_or_network(key: str) -> str:
    if key.startswith("IPv6:"):
        try:
            ipaddress.IPv6Address(key[5:])
        except ValueError:
            raise ValidationError(f"{key!r} is not an IPv6 address (write IPv6:2001:db8::1)") from None
        return key
    if NETWORK_PREFIX.match(key):
        if all(0 <= int(part) <= 255 for part in key.split(".")):
            return key
        raise ValidationError(f"{key!r}: each part of an IPv4 address or prefix must be 0-255")
    raise ValidationError(f"{key!r} is not an IPv4 address or prefix (e.g. 192.0.2.7 or 10.1) or IPv6:…")


def _host_or_network(key: str) -> str:
    if NETWORK_PREFIX.match(key) or key.startswith("IPv6:"):
        return _address_or_network(key)
    if DOMAIN.match(key) and len(key) <= 253:
        return key
    raise ValidationError(f"{key!r} is not an address, network prefix, host name or domain")


def _mail_address_or_domain(key: str) -> str:
    local, at, domain = key.rpartition("@")
    if not at:
        return _host_or_network(key)
    if local and not LOCAL_PART.match(local):
        raise ValidationError(f"{local!r} is not a plain local part (letters, digits and !%&*+/=?^_{{|}}~.-)")
    if domain and not DOMAIN.match(domain):
        raise ValidationError(f"{domain!r} is not a domain")
    if not (local or domain):
        raise ValidationError("an address needs a local part or a domain")
    return key


def _recipient_or_domain(key: str) -> str:
    """A TLS_Rcpt key: tls_rcpt looks up user@domain, user@, the domain (and its parents), then the tag."""
    local, at, domain = key.rpartition("@")
    if at and not local:
        raise ValidationError(
            f"{key!r}: tls_rcpt never looks up @domain; write the domain alone (TLS_Rcpt:{domain or 'example.org'})"
        )
    if at and not LOCAL_PART.match(local):
        raise ValidationError(f"{local!r} is not a plain local part (letters, digits and !%&*+/=?^_{{|}}~.-)")
    name = domain if at else key
    if at and not domain:
        return key
    if not DOMAIN.match(name) or len(name) > 253 or NETWORK_PREFIX.match(name.strip(".")):
        raise ValidationError(f"{name!r} is not a domain (write user@example.org, user@ or example.org)")
    if name.endswith("."):
        raise ValidationError(f"{name!r}: tls_rcpt strips the trailing dot before it looks a domain up; leave it off")
    return key


def _count(value: str) -> str:
    if not value.isdigit() or len(value) > 9:
        raise ValidationError(f"{value!r} is not a whole number (0 = no limit)")
    return str(int(value))


def _milliseconds(value: str) -> str:
    if not value.isdigit() or int(value) > 600000:
        raise ValidationError(f"{value!r} is not a pause in milliseconds between 0 and 600000")
    return str(int(value))


def _action(value: str) -> str:
    if value.upper() not in ACTIONS:
        raise ValidationError(f"{value!r} is not one of {', '.join(ACTIONS)}")
    return value.upper()


def _tls_extension(text: str) -> str:
    name, colon, argument = text.partition(":")
    canonical = EXTENSION_NAMES.get(name.lower())
    if canonical is None:
        raise ValidationError(
            f"{text!r} is not an extension sendmail knows (CN, CN:name, CS:subject, CI:issuer, CITag:tag)"
        )
    if canonical == "CN" and not colon:
        return "CN"  # the name of the other side must match the certificate's CN
    if not argument:
        raise ValidationError(f"{canonical}: needs a value after the colon")
    if canonical == "CN" and not CERT_NAME.match(argument):
        raise ValidationError(f'{argument!r} is not a certificate CN as sendmail holds it (spaces and ()<>"+ as +XX)')
    if canonical in ("CS", "CI") and not CERT_DN.match(argument):
        raise ValidationError(
            f"{argument!r} is not a certificate DN as sendmail holds it (/C=US/O=Example/CN=mx.example.org, "
            'spaces and ()<>"+ as +XX)'
        )
    if canonical == "CITag" and not CERT_TAG.match(argument):
        raise ValidationError(f"{argument!r} is not a tag (a letter, then letters, digits or _)")
    return f"{canonical}:{argument}"


def _tls_requirement(value: str) -> str:
    found = TLS_REQUIREMENT.match(value)
    if not found:
        raise ValidationError(
            f"{value!r} is not VERIFY, VERIFY:bits or ENCR:bits (optionally PERM+ or TEMP+ before it, "
            "+CN, +CN:name, +CS:subject, +CI:issuer or +CITag:tag after it, several joined by ++)"
        )
    kind = found["kind"].upper()
    if kind == "ENCR" and not found["bits"]:
        raise ValidationError(f"{value!r}: ENCR needs the number of bits (ENCR:128)")
    text = (found["severity"].upper() + "+" if found["severity"] else "") + kind
    if found["bits"]:
        text += f":{int(found['bits'])}"
    if found["extensions"] is not None:
        # cf/README: the list starts with + and its items are separated by ++.
        items = found["extensions"].split("++")
        if not all(items):
            raise ValidationError(f"{value!r}: an empty extension (extensions are joined by ++)")
        text += "+" + "++".join(_tls_extension(item) for item in items)
    return text


def _feature_letters(allowed: str, what: str):
    def check(value: str) -> str:
        words = re.split(" +", value)
        if not all(words):
            raise ValidationError(f"{value!r}: letters with spaces between them, none before or after (e.g. V l)")
        seen: dict[str, str] = {}
        for word in words:
            if len(word) != 1:
                raise ValidationError(
                    f"{word!r}: one letter per word; sendmail reads only the first letter of each word "
                    "(write the letters with spaces between them)"
                )
            if word not in allowed:
                raise ValidationError(f"{word!r} is not one of the {what} letters ({' '.join(allowed)})")
            if word.upper() in seen:
                raise ValidationError(f"{seen[word.upper()]!r} and {word!r} name the same feature twice")
            seen[word.upper()] = word
        return " ".join(words)

    return check


def _yes_no(value: str) -> str:
    if value.upper() not in ("YES", "NO"):
        raise ValidationError(f"{value!r} is not YES or NO")
    return value.upper()


# tag → (key check, default row allowed, value check, what the value means)
TAGS = {
    "ClientRate": (_address_or_network, True, _count, "connections allowed per ConnectionRateWindowSize"),
    "ClientConn": (_address_or_network, True, _count, "simultaneous connections allowed"),
    "GreetPause": (_host_or_network, True, _milliseconds, "milliseconds to wait before the greeting"),
    "Connect": (_host_or_network, False, _action, "what to do with the connection"),
    "From": (_mail_address_or_domain, False, _action, "what to do with mail from this sender"),
    "To": (_mail_address_or_domain, False, _action, "what to do with mail to this recipient"),
    "TLS_Clt": (_host_or_network, True, _tls_requirement, "TLS a client must offer"),
    "TLS_Srv": (_host_or_network, True, _tls_requirement, "TLS a server we send to must offer"),
    "TLS_Rcpt": (
        _recipient_or_domain,
        True,
        _tls_requirement,
        "TLS the MTA we send this recipient's mail to must offer",
    ),
    "Try_TLS": (_host_or_network, True, _yes_no, "whether to try STARTTLS with this server"),
    "Srv_Features": (
        _host_or_network,
        True,
        _feature_letters(SRV_FEATURE_LETTERS, "srv_features"),
        "what we offer this client (letters: V = no client certificate, S = no STARTTLS, A = no AUTH …)",
    ),
    "Clt_Features": (
        _host_or_network,
        True,
        _feature_letters(CLT_FEATURE_LETTERS, "clt_features"),
        "what we use with this server (letters: S = no STARTTLS, A = no AUTH, D = no DANE, M = no MTA-STS)",
    ),
}
# Tags whose value is a list of words: spaces between them are part of the type.
SPACED_VALUES = frozenset({"Srv_Features", "Clt_Features"})

FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\U0010ffff\"'`$#,;<>\\]")


def _forbidden(field: str, text: str, spaced: bool = False) -> dict[str, str]:
    bad = FORBIDDEN.search(text.replace(" ", "") if spaced else text)
    if bad:
        allowed = "spaces between letters are allowed; " if spaced else "spaces, "
        return {field: f"contains {bad.group()!r}: {allowed}control characters, quotes and ,;<>$#\\ are not allowed"}
    if len(text) > 253:
        return {field: "longer than 253 characters"}
    return {}


def clean_key(tag: str, key: str) -> str:
    """Validate the key of a row (or of a lookup) of `tag`; returns it as it goes into the map."""
    if tag not in TAGS:
        raise ValidationError(f"{tag!r} is not an access map tag this console manages")
    check_key, default_allowed, _, _ = TAGS[tag]
    errors = _forbidden("key", key)
    if errors:
        raise ValidationError(errors)
    if key == "":
        if not default_allowed:
            raise ValidationError({"key": f"{tag} needs a key (there is no default {tag} row)"})
        return key
    try:
        return check_key(key)
    except ValidationError as exc:
        raise ValidationError({"key": exc.messages}) from None


def clean_entry(tag: str, key: str, value: str) -> tuple[str, str, str]:
    """Validate one row; returns (tag, key, value) as they go into the map, or raises ValidationError."""
    if tag not in TAGS:
        raise ValidationError(f"{tag!r} is not an access map tag this console manages")
    check_value = TAGS[tag][2]
    errors = _forbidden("key", key) | _forbidden("value", value, tag in SPACED_VALUES)
    if errors:
        raise ValidationError(errors)
    key = clean_key(tag, key)
    if value == "":
        raise ValidationError({"value": "a value is required"})
    try:
        value = check_value(value)
    except ValidationError as exc:
        raise ValidationError({"value": exc.messages}) from None
    return tag, key, value


def render(entries: Iterable[tuple[str, str, str]]) -> str:
    """The access file: one `Tag:key<TAB>value` line per row, in a stable order."""
    lines = [f"{tag}:{key}\t{value}" for tag, key, value in sorted(entries)]
    return "".join(line + "\n" for line in lines)


LOOKUP = re.compile(r"map_lookup: (?P<map>\S+) \((?P<key>.*)\) (?:returns (?P<value>.*) \(\d+\)|no match)")


def parse_lookup(output: str) -> str | None:
    """The value `sendmail -bt` printed for `/map access KEY`, or None for no match."""
    for line in output.splitlines():
        found = LOOKUP.search(line)
        if found:
            return found.group("value")
    raise ValueError("sendmail -bt printed no map_lookup line:\n" + output[-1000:])
