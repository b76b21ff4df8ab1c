"""The access map: typed rows → the text makemap compiles.

Every key and value is checked against its tag's type before it can reach makemap: a newline
or tab in a value would add a row of its own (a GreetPause value `5000⏎Connect:10 RELAY` opens
relaying for 10/8), so nothing but the characters a type allows gets through.
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
TLS_REQUIREMENT = re.compile(
    r"^(?P<kind>VERIFY|ENCR)(?::(?P<bits>\d{1,4}))?(?:\+CN:(?P<cn>[A-Za-z0-9.-]{1,253}))?$", re.IGNORECASE
)


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


def _tls_requirement(value: str) -> str:
    found = TLS_REQUIREMENT.match(value)
    if not found or (found["kind"].upper() == "ENCR" and not found["bits"]):
        raise ValidationError(f"{value!r} is not VERIFY, VERIFY:bits, ENCR:bits or VERIFY:bits+CN:name")
    bits = f":{found['bits']}" if found["bits"] else ""
    name = f"+CN:{found['cn']}" if found["cn"] else ""
    return found["kind"].upper() + bits + name


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
    "Try_TLS": (_host_or_network, True, _yes_no, "whether to try STARTTLS with this server"),
}

FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\U0010ffff\"'`$#,;<>\\]")


def clean_entry(tag: str, key: str, value: str) -> tuple[str, str, str]:
    """Validate one row; returns (tag, key, value) as they go into the map, or raises ValidationError."""
    if tag not in TAGS:
        raise ValidationError(f"{tag!r} is not an access map tag this console manages")
    check_key, default_allowed, check_value, _ = TAGS[tag]
    errors = {}
    for field, text in (("key", key), ("value", value)):
        bad = FORBIDDEN.search(text)
        if bad:
            errors[field] = f"contains {bad.group()!r}: spaces, control characters, quotes and ,;<>$#\\ are not allowed"
    if len(key) > 253 or len(value) > 253:
        errors.setdefault("key" if len(key) > 253 else "value", "longer than 253 characters")
    if errors:
        raise ValidationError(errors)
    if key == "":
        if not default_allowed:
            raise ValidationError({"key": f"{tag} needs a key (there is no default {tag} row)"})
    else:
        try:
            key = check_key(key)
        except ValidationError as exc:
            raise ValidationError({"key": exc.messages}) from None
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
