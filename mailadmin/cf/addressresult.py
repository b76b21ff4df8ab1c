"""What sendmail says about where an address goes, read from its own output (pure: parses text).

The address tester (mailadmin/mta/addresstest.py) asks sendmail three things about one address:

- `sendmail -v -d60.1 -bv ADDRESS`: the verdict per final recipient (`x... deliverable: mailer
  esmtp, host [127.0.0.3], user x@example.org`, or `x... User unknown`), each alias expansion
  (`x... aliased to a, b`: that line needs -v), and, from -d60.1, every map lookup the rewriting
  rules made with its answer (`map_lookup(virtuser, x@example.org) => team (0), ad=0`); measured on
  8.17.1.9: -d38.20 names the lookups but not their answers, -d60.1 gives both;
- `sendmail -d60.1 -bt` fed `3,0 ADDRESS` (the rule sets' final `$# mailer $@ host $: user`
  triple) and `/parse ADDRESS` (the whole envelope-recipient path, ending `mailer m, host h, user u`);
- when the cf reads a genericstable, `/tryflags hs` and `/try esmtp ADDRESS`: the address as the
  From: header of outgoing mail (`Rcode = 0, addr = noreply@example.org`).

The address itself is checked first (clean_address): it goes on sendmail's command line and into
address test mode's input, so it is a plain mailbox and nothing else. It never reaches m4, so a
word that names an m4 macro (MAILER-DAEMON) is a fine local part here.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

from mailadmin.cf.m4safe import MailboxValue, check_characters, check_length

MAX_ADDRESS_LENGTH = 254
# The maps a postmaster edits (the cf's K name → the file's name); the others the rules consult
# (dequote, arith, macro, host …) are machinery, not an entry that "applied".
TABLE_MAPS = {
    "virtuser": "virtusertable",
    "mailertable": "mailertable",
    "generics": "genericstable",
    "domaintable": "domaintable",
}
NOT_FOUND = "NOT FOUND"

_DELIVERABLE = re.compile(
    r"(?P<address>.+?)\.\.\. deliverable: mailer (?P<mailer>[^,]+)(?:, host (?P<host>.+?))?, user (?P<user>.*)"
)
_ALIASED = re.compile(r"(?P<address>.+?)\.\.\. aliased to (?P<targets>.*)")
_VERDICT = re.compile(r"(?P<address>[^\s.][^\s]*?)\.\.\. (?P<message>.+)")
_MAP_LOOKUP = re.compile(r"map_lookup\((?P<map>[^,]+), (?P<key>.*)\) => (?P<value>.*) \((?P<status>-?\d+)\), ad=\d+")
_PARSED = re.compile(r"mailer (?P<mailer>\S+?)(?:, host (?P<host>.+?))?, user (?P<user>.*)")
_RETURNS = re.compile(r"\S+\s+returns: (?P<workspace>.*)")
_TRIED = re.compile(r"Rcode = (?P<rcode>-?\d+), addr = (?P<address>.*)")


def clean_address(raw: object) -> str:
    """The address to test: `user` or `user@domain` (domain lower-cased), or ValidationError.

    Nothing but letters, digits and `. _ + -` in the local part and a host name after `@`: no
    space, control character, quote, `$`, `#`, bracket, comma or routing operator (`%`, `!`), and
    no leading `-` (sendmail would read it as an option) or `/` (a -bt command)."""
    mailbox = MailboxValue()
    if not isinstance(raw, str):
        raise ValidationError(f"Must be text, not {type(raw).__name__}.", code="not_text")
    if not raw:
        raise ValidationError("Type an address to test.", code="required")
    check_length(raw, MAX_ADDRESS_LENGTH)
    check_characters(raw)
    return mailbox.clean_value(raw, reserved=frozenset(), roots=())


def map_lookups(output: str) -> list[dict]:
    """Every `map_lookup(...)` line of -d60.1 output, in order: map, key, value (None: no match)."""
    found = []
    for line in output.splitlines():
        match = _MAP_LOOKUP.fullmatch(line.strip())
        if match:
            value = match["value"]
            found.append({"map": match["map"], "key": match["key"], "value": None if value == NOT_FOUND else value})
    return found


def applied_entries(lookups: list[dict]) -> list[dict]:
    """The map entries that answered (virtusertable, mailertable, genericstable, domaintable), once each."""
    applied: list[dict] = []
    for lookup in lookups:
        if lookup["value"] is None or lookup["map"] not in TABLE_MAPS:
            continue
        entry = {"map": TABLE_MAPS[lookup["map"]], "key": lookup["key"], "value": lookup["value"]}
        if entry not in applied:
            applied.append(entry)
    return applied


def parse_verify(output: str) -> dict:
    """`sendmail -v -d60.1 -bv` output: deliveries (deliverable or refused, per final recipient),
    alias expansions, the map entries that applied, and any other line sendmail printed (notes)."""
    deliveries, aliases, notes = [], [], []
    for line in output.splitlines():
        text = line.strip()
        if not text or _MAP_LOOKUP.fullmatch(text):
            continue
        if match := _DELIVERABLE.fullmatch(text):
            deliveries.append(
                {
                    "address": match["address"],
                    "deliverable": True,
                    "mailer": match["mailer"],
                    "host": match["host"] or "",
                    "user": match["user"],
                    "message": "",
                }
            )
        elif match := _ALIASED.fullmatch(text):
            targets = [t.strip() for t in match["targets"].split(",") if t.strip()]
            aliases.append({"address": match["address"], "targets": targets})
        elif match := _VERDICT.fullmatch(text):
            deliveries.append(
                {
                    "address": match["address"],
                    "deliverable": False,
                    "mailer": "",
                    "host": "",
                    "user": "",
                    "message": match["message"],
                }
            )
        else:
            notes.append(text)
    applied = applied_entries(map_lookups(output))
    for alias in aliases:
        alias["name"] = alias_name(alias["address"], applied)
    return {"deliveries": deliveries, "aliases": aliases, "applied": applied, "notes": notes}


def alias_name(address: str, applied: list[dict]) -> str:
    """The aliases key behind `x... aliased to`: sendmail names the address it was given, but the
    key is its local part, or the local user a virtusertable entry turned it into."""
    for entry in applied:
        if entry["map"] == "virtusertable" and entry["key"] == address and "@" not in entry["value"]:
            return entry["value"]
    return address.partition("@")[0]


def answers_per_line(output: str) -> list[str]:
    """`sendmail -bt` output cut into the answer to each input line, in input order.

    Address test mode prints a `> ` prompt before it reads each line, and the answer follows it;
    a command that prints nothing (/tryflags) leaves two prompts on one line (`> > Trying …`).
    The banner before the first prompt is dropped; the last block is the prompt that met EOF."""
    blocks: list[list[str]] | None = None
    for line in output.splitlines():
        while line.startswith("> ") or line == ">":
            blocks = [] if blocks is None else blocks
            blocks.append([])
            line = line[2:]
        if blocks is not None and line:
            blocks[-1].append(line)
    return ["\n".join(block) for block in (blocks or [])]


def tokens_joined(workspace: str, *, keep_spaces: bool = False) -> str:
    """A rewriting workspace (`bob < @ partner . example . >`) as text (`bob<@partner.example.>`).
    An error mailer's text keeps its words apart (`550 gone away`)."""
    text = workspace.strip()
    if keep_spaces:
        return re.sub(r" ?([.:]) ?", r"\1", text) if re.fullmatch(r"[\d .]+", text) else text
    return text.replace(" ", "")


def parse_triple(workspace: str) -> dict | None:
    """`$# mailer $@ host $: user` (the form ruleset 0 resolves an address to), or None when the
    rules returned an address instead of a triple."""
    match = re.fullmatch(
        r"\$#\s*(?P<mailer>\S+)(?:\s*\$@\s*(?P<host>.*?))?(?:\s*\$:\s*(?P<user>.*))?", workspace.strip()
    )
    if not match:
        return None
    error = match["mailer"] == "error"
    return {
        "mailer": match["mailer"],
        "host": tokens_joined(match["host"] or "", keep_spaces=error),
        "user": tokens_joined(match["user"] or "", keep_spaces=error),
    }


def parse_rulesets(block: str) -> dict:
    """The answer to `3,0 ADDRESS`: the last workspace ruleset 0 returned, as a triple if it is one."""
    returned = [m["workspace"] for line in block.splitlines() if (m := _RETURNS.fullmatch(line.strip()))]
    final = returned[-1] if returned else ""
    return {"workspace": final, "triple": parse_triple(final) if final else None}


def parse_parse(block: str) -> dict | None:
    """The answer to `/parse ADDRESS`: its closing `mailer m, host h, user u` line, or None."""
    for line in reversed(block.splitlines()):
        match = _PARSED.fullmatch(line.strip())
        if match:
            return {"mailer": match["mailer"], "host": match["host"] or "", "user": match["user"]}
    return None


def parse_try(block: str) -> dict | None:
    """The answer to `/try MAILER ADDRESS`: the rewritten address and the generics entry that did it."""
    tried = next((m for line in block.splitlines() if (m := _TRIED.fullmatch(line.strip()))), None)
    if tried is None:
        return None
    return {
        "address": tried["address"],
        "rcode": int(tried["rcode"]),
        "applied": [e for e in applied_entries(map_lookups(block)) if e["map"] == "genericstable"],
    }


def _delivery_words(delivery: dict, said: str) -> str:
    where = f"by mailer {delivery['mailer']}"
    if not delivery["host"]:
        return f"{where} to user {delivery['user']}"
    where += f" to host {delivery['host']}"
    # The user a remote host is given is mostly the address the sentence already said.
    return where if delivery["user"] == said else f"{where}, user {delivery['user']}"


def _because(verify: dict, sender: dict | None) -> list[str]:
    reasons = [f"alias {a['name']} → {', '.join(a['targets'])}" for a in verify["aliases"]]
    reasons += [f"{e['map']} {e['key']} → {e['value']}" for e in verify["applied"]]
    if sender:
        reasons += [f"{e['map']} {e['key']} → {e['value']}" for e in sender["applied"] if e not in verify["applied"]]
    return reasons


def sentence(address: str, verify: dict, *, build_label: str = "", sender: dict | None = None) -> str:
    """One plain sentence: where `address` would go, and which alias or map entry sent it there."""
    delivered = [d for d in verify["deliveries"] if d["deliverable"]]
    refused = [d for d in verify["deliveries"] if not d["deliverable"]]
    parts = []
    if len(delivered) == 1 and not refused:
        parts.append(f"{address} would be delivered {_delivery_words(delivered[0], address)}")
    elif delivered:
        each = "; ".join(f"{d['address']} {_delivery_words(d, d['address'])}" for d in delivered)
        parts.append(f"{address} would go to {len(delivered)} recipient{'s' if len(delivered) > 1 else ''}: {each}")
    for d in refused:
        subject = address if d["address"] == address and not delivered else d["address"]
        parts.append(f"{subject} would be refused: {d['message']}")
    if not parts:
        parts.append(f"sendmail gave no verdict for {address}")
    text = "; ".join(parts)
    if sender and sender["applied"] and sender["address"] != address:
        text += f"; as a sender it would be rewritten to {sender['address']}"
    reasons = _because(verify, sender)
    if reasons:
        text += f" ({'; '.join(reasons)})"
    if build_label:
        text = f"After {build_label}, {text}"
    return text + "."
