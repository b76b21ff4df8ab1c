"""Values bound for sendmail's argv (quarantine reasons, -qR/-qS/-qI/-qQ selectors, queue ids).

The first byte picks the validator, the rest is the value as UTF-8 (decoded the way Django decodes a
form). Only ValidationError may escape, and an accepted value is returned unchanged, is printable,
does not start with "-" (sendmail would read a flag) and keeps to the allow-list written out here,
independently of the validators' own regular expressions.
"""

import string
import unicodedata
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

from django.core.exceptions import ValidationError

from mailqueue.forms import REASON_MAX, SELECTOR_MAX, validate_queue_id, validate_reason, validate_selector

REASON_ALLOWED = frozenset(string.ascii_letters + string.digits + " .,:_@+=/#%()!?*-")
ADDRESS_ALLOWED = frozenset(string.ascii_letters + string.digits + ".@_+=%-")
ALPHANUMERIC = frozenset(string.ascii_letters + string.digits)
QUEUE_ID_MAX = 18


class Validator(NamedTuple):
    letter: str
    validate: Callable[[str], str]
    allowed: frozenset[str]
    longest: int


VALIDATORS = (
    Validator("r", validate_reason, REASON_ALLOWED, REASON_MAX),
    Validator("R", partial(validate_selector, kind="R"), ADDRESS_ALLOWED, SELECTOR_MAX),
    Validator("S", partial(validate_selector, kind="S"), ADDRESS_ALLOWED, SELECTOR_MAX),
    Validator("I", partial(validate_selector, kind="I"), ALPHANUMERIC, SELECTOR_MAX),
    Validator("Q", partial(validate_selector, kind="Q"), REASON_ALLOWED, SELECTOR_MAX),
    Validator("i", validate_queue_id, ALPHANUMERIC, QUEUE_ID_MAX),
)


def check(data: bytes) -> None:
    if not data:
        return
    letter = chr(data[0])
    validator = next((v for v in VALIDATORS if v.letter == letter), VALIDATORS[data[0] % len(VALIDATORS)])
    value = data[1:].decode("utf-8", "replace")
    try:
        accepted = validator.validate(value)
    except ValidationError:
        return
    assert accepted == value
    assert 0 < len(value) <= validator.longest
    assert not value.startswith("-") and value != "."
    assert not any(unicodedata.category(ch).startswith("C") for ch in value)
    assert set(value) <= validator.allowed, set(value) - validator.allowed
