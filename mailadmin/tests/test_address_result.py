"""The parsing of sendmail's answers about an address (mailadmin/cf/addressresult.py), on outputs
captured from a real sendmail 8.17.1.9 (an embedded instance with FEATURE(virtusertable),
mailertable, genericstable and domaintable on; aliases `team: alice@remote.example,
bob@partner.example` and virtusertable `sales@example.org team`), and the address type on
hostile input."""

import pytest
from django.core.exceptions import ValidationError

from mailadmin.cf import addressresult
from testing.hostile_values import hostile_values

# `sendmail -v -d60.1 -bv ...`, stdout as printed.
VERIFY_VIRTUSER_TO_TWO = """\
map_lookup(dequote, root) => NOT FOUND (0), ad=0
map_lookup(domaintable, example.org) => NOT FOUND (0), ad=0
map_lookup(dequote, sales) => NOT FOUND (0), ad=0
map_lookup(virtuser, sales@example.org) => team (0), ad=0
map_lookup(dequote, team) => NOT FOUND (0), ad=0
sales@example.org... aliased to alice@remote.example, bob@partner.example
map_lookup(domaintable, remote.example) => NOT FOUND (0), ad=0
map_lookup(mailertable, remote.example) => NOT FOUND (0), ad=0
map_lookup(mailertable, .example) => NOT FOUND (0), ad=0
map_lookup(mailertable, .) => NOT FOUND (0), ad=0
map_lookup(domaintable, partner.example) => NOT FOUND (0), ad=0
map_lookup(mailertable, partner.example) => esmtp:[127.0.0.3] (0), ad=0
alice@remote.example... deliverable: mailer relay, host [127.0.0.2], user alice@remote.example
bob@partner.example... deliverable: mailer esmtp, host [127.0.0.3], user bob@partner.example
"""
VERIFY_ALIAS_CHAIN = """\
map_lookup(dequote, root) => NOT FOUND (0), ad=0
map_lookup(dequote, postmaster) => NOT FOUND (0), ad=0
postmaster... aliased to root
map_lookup(dequote, root) => NOT FOUND (0), ad=0
root... aliased to postmaster@remote.example
map_lookup(domaintable, remote.example) => NOT FOUND (0), ad=0
map_lookup(mailertable, remote.example) => NOT FOUND (0), ad=0
map_lookup(mailertable, .example) => NOT FOUND (0), ad=0
map_lookup(mailertable, .) => NOT FOUND (0), ad=0
postmaster@remote.example... deliverable: mailer relay, host [127.0.0.2], user postmaster@remote.example
"""
VERIFY_ERROR_MAILER = """\
map_lookup(dequote, root) => NOT FOUND (0), ad=0
map_lookup(domaintable, example.org) => NOT FOUND (0), ad=0
map_lookup(dequote, user1) => NOT FOUND (0), ad=0
map_lookup(virtuser, user1@example.org) => error:5.7.0:550 gone away (0), ad=0
user1@example.org... gone away
"""
VERIFY_UNKNOWN = """\
map_lookup(dequote, root) => NOT FOUND (0), ad=0
map_lookup(dequote, nosuch) => NOT FOUND (0), ad=0
nosuch... User unknown
"""

# `sendmail -d60.1 -bt` fed: 3,0 x@partner.example / /parse x@partner.example / /tryflags hs / /try esmtp nobody
TEST_MODE_MAILERTABLE_AND_GENERICS = """\
ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)
Enter <ruleset> <address>
> canonify           input: x @ partner . example
Canonify2          input: x < @ partner . example >
map_lookup(domaintable, partner.example) => NOT FOUND (0), ad=0
Canonify2        returns: x < @ partner . example . >
canonify         returns: x < @ partner . example . >
parse              input: x < @ partner . example . >
Parse0             input: x < @ partner . example . >
Parse0           returns: x < @ partner . example . >
Parse1             input: x < @ partner . example . >
map_lookup(mailertable, partner.example) => esmtp:[127.0.0.3] (0), ad=0
MailerToTriple     input: < esmtp : [ 127 . 0 . 0 . 3 ] > x < @ partner . example . >
MailerToTriple   returns: $# esmtp $@ [ 127 . 0 . 0 . 3 ] $: x < @ partner . example . >
Parse1           returns: $# esmtp $@ [ 127 . 0 . 0 . 3 ] $: x < @ partner . example . >
parse            returns: $# esmtp $@ [ 127 . 0 . 0 . 3 ] $: x < @ partner . example . >
> Cracked address = $g
Parsing envelope recipient address
canonify           input: x @ partner . example
Canonify2          input: x < @ partner . example >
map_lookup(domaintable, partner.example) => NOT FOUND (0), ad=0
Canonify2        returns: x < @ partner . example . >
canonify         returns: x < @ partner . example . >
parse              input: x < @ partner . example . >
Parse0             input: x < @ partner . example . >
Parse0           returns: x < @ partner . example . >
Parse1             input: x < @ partner . example . >
map_lookup(mailertable, partner.example) => esmtp:[127.0.0.3] (0), ad=0
MailerToTriple     input: < esmtp : [ 127 . 0 . 0 . 3 ] > x < @ partner . example . >
MailerToTriple   returns: $# esmtp $@ [ 127 . 0 . 0 . 3 ] $: x < @ partner . example . >
Parse1           returns: $# esmtp $@ [ 127 . 0 . 0 . 3 ] $: x < @ partner . example . >
parse            returns: $# esmtp $@ [ 127 . 0 . 0 . 3 ] $: x < @ partner . example . >
2                  input: x < @ partner . example . >
2                returns: x < @ partner . example . >
EnvToSMTP          input: x < @ partner . example . >
PseudoToReal       input: x < @ partner . example . >
PseudoToReal     returns: x < @ partner . example . >
MasqSMTP           input: x < @ partner . example . >
MasqSMTP         returns: x < @ partner . example . >
EnvToSMTP        returns: x < @ partner . example . >
final              input: x < @ partner . example . >
final            returns: x @ partner . example
mailer esmtp, host [127.0.0.3], user x@partner.example
> > Trying header sender address nobody for mailer esmtp
canonify           input: nobody
Canonify2          input: nobody
Canonify2        returns: nobody
canonify         returns: nobody
1                  input: nobody
1                returns: nobody
HdrFromSMTP        input: nobody
PseudoToReal       input: nobody
PseudoToReal     returns: nobody
MasqSMTP           input: nobody
MasqSMTP         returns: nobody < @ *LOCAL* >
MasqHdr            input: nobody < @ *LOCAL* >
map_lookup(generics, nobody@vm.localdomain) => NOT FOUND (0), ad=0
map_lookup(generics, nobody) => noreply@example.org (0), ad=0
canonify           input: noreply @ example . org
Canonify2          input: noreply < @ example . org >
map_lookup(domaintable, example.org) => NOT FOUND (0), ad=0
Canonify2        returns: noreply < @ example . org . >
canonify         returns: noreply < @ example . org . >
MasqHdr          returns: noreply < @ example . org . >
HdrFromSMTP      returns: noreply < @ example . org . >
final              input: noreply < @ example . org . >
final            returns: noreply @ example . org
Rcode = 0, addr = noreply@example.org
> """

# `sendmail -d60.1 -bt` fed: 3,0 user1@example.org / /parse user1@example.org
TEST_MODE_ERROR = """\
ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)
Enter <ruleset> <address>
> canonify           input: user1 @ example . org
Canonify2          input: user1 < @ example . org >
map_lookup(domaintable, example.org) => NOT FOUND (0), ad=0
Canonify2        returns: user1 < @ example . org . >
canonify         returns: user1 < @ example . org . >
parse              input: user1 < @ example . org . >
Parse0             input: user1 < @ example . org . >
map_lookup(dequote, user1) => NOT FOUND (0), ad=0
Parse0           returns: user1 < @ example . org . >
Parse1             input: user1 < @ example . org . >
map_lookup(virtuser, user1@example.org) => error:5.7.0:550 gone away (0), ad=0
Parse1           returns: $# error $@ 5 . 7 . 0 $: 550 gone away
parse            returns: $# error $@ 5 . 7 . 0 $: 550 gone away
> Cracked address = $g
Parsing envelope recipient address
canonify           input: user1 @ example . org
Canonify2          input: user1 < @ example . org >
map_lookup(domaintable, example.org) => NOT FOUND (0), ad=0
Canonify2        returns: user1 < @ example . org . >
canonify         returns: user1 < @ example . org . >
parse              input: user1 < @ example . org . >
Parse0             input: user1 < @ example . org . >
map_lookup(dequote, user1) => NOT FOUND (0), ad=0
Parse0           returns: user1 < @ example . org . >
Parse1             input: user1 < @ example . org . >
map_lookup(virtuser, user1@example.org) => error:5.7.0:550 gone away (0), ad=0
Parse1           returns: $# error $@ 5 . 7 . 0 $: 550 gone away
parse            returns: $# error $@ 5 . 7 . 0 $: 550 gone away
user1@example.org... gone away
mailer *error*, host 5.7.0, user 550 gone away
> """


def test_a_virtuser_to_an_alias_of_two_gives_both_recipients_and_the_entries_that_sent_them():
    verify = addressresult.parse_verify(VERIFY_VIRTUSER_TO_TWO)
    assert verify["deliveries"] == [
        {
            "address": "alice@remote.example",
            "deliverable": True,
            "mailer": "relay",
            "host": "[127.0.0.2]",
            "user": "alice@remote.example",
            "message": "",
        },
        {
            "address": "bob@partner.example",
            "deliverable": True,
            "mailer": "esmtp",
            "host": "[127.0.0.3]",
            "user": "bob@partner.example",
            "message": "",
        },
    ]
    assert verify["aliases"] == [
        {"address": "sales@example.org", "targets": ["alice@remote.example", "bob@partner.example"], "name": "team"}
    ]
    assert verify["applied"] == [
        {"map": "virtusertable", "key": "sales@example.org", "value": "team"},
        {"map": "mailertable", "key": "partner.example", "value": "esmtp:[127.0.0.3]"},
    ]
    assert verify["notes"] == []
    assert addressresult.sentence("sales@example.org", verify) == (
        "sales@example.org would go to 2 recipients: alice@remote.example by mailer relay to host [127.0.0.2]; "
        "bob@partner.example by mailer esmtp to host [127.0.0.3] "
        "(alias team → alice@remote.example, bob@partner.example; "
        "virtusertable sales@example.org → team; mailertable partner.example → esmtp:[127.0.0.3])."
    )


def test_an_alias_chain_names_each_step_and_the_single_final_recipient():
    verify = addressresult.parse_verify(VERIFY_ALIAS_CHAIN)
    assert [a["address"] for a in verify["aliases"]] == ["postmaster", "root"]
    assert addressresult.sentence("postmaster", verify, build_label="build b7") == (
        "After build b7, postmaster would be delivered by mailer relay to host [127.0.0.2], "
        "user postmaster@remote.example "
        "(alias postmaster → root; alias root → postmaster@remote.example)."
    )


def test_an_error_mailer_and_an_unknown_user_are_refusals_with_sendmails_words():
    error = addressresult.parse_verify(VERIFY_ERROR_MAILER)
    assert error["deliveries"][0]["deliverable"] is False
    assert error["deliveries"][0]["message"] == "gone away"
    assert error["applied"] == [
        {"map": "virtusertable", "key": "user1@example.org", "value": "error:5.7.0:550 gone away"}
    ]
    assert addressresult.sentence("user1@example.org", error).startswith(
        "user1@example.org would be refused: gone away (virtusertable user1@example.org → error:5.7.0:550 gone away)"
    )
    unknown = addressresult.parse_verify(VERIFY_UNKNOWN)
    assert addressresult.sentence("nosuch", unknown) == "nosuch would be refused: User unknown."


def test_address_test_mode_output_is_cut_into_one_answer_per_input_line():
    blocks = addressresult.answers_per_line(TEST_MODE_MAILERTABLE_AND_GENERICS)
    assert len(blocks) == 5, "four input lines, and the prompt that met the end of input"
    assert blocks[2] == "" and blocks[4] == "", "/tryflags prints nothing"
    rulesets = addressresult.parse_rulesets(blocks[0])
    assert rulesets["workspace"] == "$# esmtp $@ [ 127 . 0 . 0 . 3 ] $: x < @ partner . example . >"
    assert rulesets["triple"] == {"mailer": "esmtp", "host": "[127.0.0.3]", "user": "x<@partner.example.>"}
    assert addressresult.parse_parse(blocks[1]) == {
        "mailer": "esmtp",
        "host": "[127.0.0.3]",
        "user": "x@partner.example",
    }
    assert addressresult.parse_try(blocks[3]) == {
        "address": "noreply@example.org",
        "rcode": 0,
        "applied": [{"map": "genericstable", "key": "nobody", "value": "noreply@example.org"}],
    }


def test_an_error_triple_keeps_its_words_and_its_status_code():
    blocks = addressresult.answers_per_line(TEST_MODE_ERROR)
    assert addressresult.parse_rulesets(blocks[0])["triple"] == {
        "mailer": "error",
        "host": "5.7.0",
        "user": "550 gone away",
    }
    assert addressresult.parse_parse(blocks[1]) == {"mailer": "*error*", "host": "5.7.0", "user": "550 gone away"}


def test_a_sender_rewritten_by_genericstable_is_said_too():
    verify = addressresult.parse_verify(VERIFY_UNKNOWN)
    sender = addressresult.parse_try(addressresult.answers_per_line(TEST_MODE_MAILERTABLE_AND_GENERICS)[3])
    assert addressresult.sentence("nosuch", verify, sender=sender) == (
        "nosuch would be refused: User unknown; as a sender it would be rewritten to noreply@example.org "
        "(genericstable nobody → noreply@example.org)."
    )


@pytest.mark.parametrize(
    "raw,clean",
    [
        ("postmaster", "postmaster"),
        ("MAILER-DAEMON", "MAILER-DAEMON"),
        ("first.last+tag@Example.ORG", "first.last+tag@example.org"),
        ("index@example.org", "index@example.org"),
    ],
)
def test_plain_addresses_and_local_parts_pass_domains_lower_cased(raw, clean):
    assert addressresult.clean_address(raw) == clean


# What an address may hold and still be harmless outside m4: a macro name is just a word here.
ADDRESS_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-@")


def test_hostile_addresses_are_refused_before_sendmail_could_see_them(tmp_path):
    refused = 0
    for value in [
        *hostile_values(str(tmp_path / "canary")),
        "-bd",
        "-C/tmp/evil.cf",
        "/map access Connect:127.0.0.1",
        ".D{client_addr}1",
        "a\n/map aliases root",
        "a b",
        "a,b",
        "a%b@example.org",
        "a!b",
        "user@[127.0.0.1]",
        "user@",
        "@example.org",
        ".user",
        "user..x",
        "|/bin/sh",
        ":include:/etc/passwd",
        '"quoted"@example.org',
        "user@exa mple.org",
        "",
        None,
        7,
    ]:
        try:
            cleaned = addressresult.clean_address(value)
        except ValidationError as exc:
            assert exc.messages and all(exc.messages)
            refused += 1
            continue
        # Accepted: only a mailbox made of plain address characters, never an option or a -bt command.
        assert set(cleaned) <= ADDRESS_CHARACTERS and not cleaned.startswith(("-", ".", "/")), repr(value)
    assert refused > 100
