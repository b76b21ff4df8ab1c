import re

import pytest
from django.core.exceptions import ValidationError

from mailadmin.cf import accessmap
from mailadmin.mta.gateway import Mta
from testing.hostile_values import hostile_values

GOOD = [
    ("ClientRate", "127.0.0.2", "2", ("ClientRate", "127.0.0.2", "2")),
    ("ClientRate", "", "10", ("ClientRate", "", "10")),
    ("ClientConn", "10.1", "05", ("ClientConn", "10.1", "5")),
    ("ClientConn", "IPv6:2001:db8::1", "3", ("ClientConn", "IPv6:2001:db8::1", "3")),
    ("GreetPause", "example.net", "5000", ("GreetPause", "example.net", "5000")),
    ("Connect", "192.0.2", "reject", ("Connect", "192.0.2", "REJECT")),
    ("From", "spammer@example.com", "REJECT", ("From", "spammer@example.com", "REJECT")),
    ("To", "postmaster@", "OK", ("To", "postmaster@", "OK")),
    ("TLS_Srv", "secure.example", "encr:128", ("TLS_Srv", "secure.example", "ENCR:128")),
    ("TLS_Clt", "", "VERIFY:112+CN:mx.example.org", ("TLS_Clt", "", "VERIFY:112+CN:mx.example.org")),
    ("Try_TLS", "broken.example", "no", ("Try_TLS", "broken.example", "NO")),
    # The requirement TLS_connection reads (cf/README "STARTTLS"), in the case cf/README writes it.
    (
        "TLS_Rcpt",
        "darth@endmail.org",
        "encr:112+cn:smtp.endmail.org",
        ("TLS_Rcpt", "darth@endmail.org", "ENCR:112+CN:smtp.endmail.org"),
    ),
    ("TLS_Rcpt", "postmaster@", "VERIFY", ("TLS_Rcpt", "postmaster@", "VERIFY")),
    ("TLS_Rcpt", "example.org", "PERM+VERIFY:128", ("TLS_Rcpt", "example.org", "PERM+VERIFY:128")),
    ("TLS_Rcpt", ".example.org", "temp+verify", ("TLS_Rcpt", ".example.org", "TEMP+VERIFY")),
    ("TLS_Rcpt", "", "ENCR:0128", ("TLS_Rcpt", "", "ENCR:128")),
    ("TLS_Srv", "safe.example.net", "VERIFY+CN++CITag:MyCA", ("TLS_Srv", "safe.example.net", "VERIFY+CN++CITag:MyCA")),
    (
        "TLS_Srv",
        "secure.example",
        "VERIFY:112+CS:/C=US/O=Example/CN=mx.example.org++ci:/C=US/O=Example/CN=Example+20CA+20+281+29",
        (
            "TLS_Srv",
            "secure.example",
            "VERIFY:112+CS:/C=US/O=Example/CN=mx.example.org++CI:/C=US/O=Example/CN=Example+20CA+20+281+29",
        ),
    ),
    ("TLS_Clt", "laptop.example.com", "PERM+VERIFY:112", ("TLS_Clt", "laptop.example.com", "PERM+VERIFY:112")),
    ("TLS_Clt", "10.1", "VERIFY+CN:Darth+20Mail", ("TLS_Clt", "10.1", "VERIFY+CN:Darth+20Mail")),
    ("Srv_Features", "my.domain", "v", ("Srv_Features", "my.domain", "v")),
    ("Srv_Features", "", "V", ("Srv_Features", "", "V")),
    ("Srv_Features", "192.0.2", "V l  S", ("Srv_Features", "192.0.2", "V l S")),
    (
        "Srv_Features",
        "IPv6:2001:db8::1",
        "A B c D E h L P S V X",
        ("Srv_Features", "IPv6:2001:db8::1", "A B c D E h L P S V X"),
    ),
    ("Clt_Features", "broken.sts", "M", ("Clt_Features", "broken.sts", "M")),
    ("Clt_Features", "", "S A D M", ("Clt_Features", "", "S A D M")),
]

HOSTILE = [
    ("GreetPause", "127.0.0.1", "5000\nConnect:10 RELAY"),
    ("GreetPause", "127.0.0.1", "5000\rConnect:10\tRELAY"),
    ("ClientRate", "127.0.0.1\tRELAY", "2"),
    ("ClientRate", "127.0.0.1 x", "2"),
    ("ClientRate", "256.1.1.1", "2"),
    ("ClientRate", "example.com", "2"),
    ("ClientRate", "127.0.0.1", "-1"),
    ("ClientRate", "127.0.0.1", "2 3"),
    ("Connect", "", "RELAY"),
    ("Connect", "10", "RELAY; rm -rf /"),
    ("Connect", "$(touch /tmp/x)", "OK"),
    ("From", "a\x00b@example.com", "OK"),
    ("From", "<a@b.example>", "OK"),
    ("To", "a@b.example", "esyscmd(id)"),
    ("TLS_Srv", "x.example", "ENCR"),
    # TLS requirements
    ("TLS_Rcpt", "a@b.example", "VERIFY\nConnect:10 RELAY"),
    ("TLS_Rcpt", "a@b.example", "VERIFY\tRELAY"),
    ("TLS_Rcpt", "a@b.example", "VERIFY #comment"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CN:a#b"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CN:esyscmd(id)"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CN:'x'"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CN:`dnl'"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CN:$&{cn_subject}"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CS:/CN=Darth Mail"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CS:/CN=Darth(Mail)"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CS:/CN=a+2"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CS:CN=no.leading.slash"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CI:"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CITag:My-CA"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CX:foo"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CN+CS:/C=US"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CN++"),
    ("TLS_Rcpt", "a@b.example", "VERIFY+CN+++CI:/C=US"),
    ("TLS_Rcpt", "a@b.example", "VERIFY:abc"),
    ("TLS_Rcpt", "a@b.example", "VERIFY:12345"),
    ("TLS_Rcpt", "a@b.example", "PERM+TEMP+VERIFY"),
    ("TLS_Rcpt", "a@b.example", "SOFT+VERIFY"),
    ("TLS_Rcpt", "a@b.example", "ENCR+CN"),
    ("TLS_Rcpt", "a@b.example", "OK"),
    ("TLS_Rcpt", "a@b.example", ""),
    # TLS_Rcpt keys: what tls_rcpt looks up (user@domain, user@, domain, the bare tag)
    ("TLS_Rcpt", "@example.org", "VERIFY"),
    ("TLS_Rcpt", "10.1", "VERIFY"),
    ("TLS_Rcpt", "192.0.2.7", "VERIFY"),
    ("TLS_Rcpt", "a b@example.org", "VERIFY"),
    ("TLS_Rcpt", "<a@example.org>", "VERIFY"),
    ("TLS_Rcpt", "a@example.org\nConnect:10", "VERIFY"),
    ("TLS_Rcpt", "a@exa_mple.org", "VERIFY"),
    ("TLS_Rcpt", "example.org.", "VERIFY"),
    ("TLS_Rcpt", "user@example.org.", "VERIFY"),
    # feature letters: one a word, the documented ones, each once
    ("Srv_Features", "10.1", "Vl"),
    ("Srv_Features", "10.1", "V v"),
    ("Srv_Features", "10.1", "V V"),
    ("Srv_Features", "10.1", "Q"),
    ("Srv_Features", "10.1", "R"),
    ("Srv_Features", "10.1", " V"),
    ("Srv_Features", "10.1", "V "),
    ("Srv_Features", "10.1", "V\tl"),
    ("Srv_Features", "10.1", "V\nConnect:10 RELAY"),
    ("Srv_Features", "10.1", "V,l"),
    ("Srv_Features", "10.1", "V #x"),
    ("Srv_Features", "10.1", "dnl"),
    ("Srv_Features", "10.1", "\u0412"),
    ("Srv_Features", "a@b.example", "V"),
    ("Srv_Features", "10.1 x", "V"),
    ("Clt_Features", "broken.sts", "d"),
    ("Clt_Features", "broken.sts", "m"),
    ("Clt_Features", "broken.sts", "V"),
    ("Clt_Features", "broken.sts", "DM"),
    ("Clt_Features", "broken.sts", ""),
    ("Try_TLS", "x.example", "maybe"),
    ("NoSuchTag", "x", "OK"),
    ("GreetPause", "x.example", "9" * 30),
    ("Connect", "é.example", "OK"),
    ("Connect", "a" * 300, "OK"),
]


@pytest.mark.parametrize("tag,key,value,expected", GOOD)
def test_valid_rows_are_normalised(tag, key, value, expected):
    assert accessmap.clean_entry(tag, key, value) == expected


@pytest.mark.parametrize("tag,key,value", HOSTILE)
def test_hostile_rows_are_refused_with_a_reason(tag, key, value):
    with pytest.raises(ValidationError) as caught:
        accessmap.clean_entry(tag, key, value)
    assert caught.value.messages and all(caught.value.messages)


def test_rendering_is_one_line_per_row_in_a_stable_order():
    rows = [("GreetPause", "", "5000"), ("ClientRate", "127.0.0.2", "2"), ("ClientRate", "", "10")]
    assert accessmap.render(rows) == "ClientRate:\t10\nClientRate:127.0.0.2\t2\nGreetPause:\t5000\n"


def test_sendmail_looks_up_the_compiled_map(mta_server):
    result = Mta(mta_server).map_lookup("access", "Connect:127.0.0.1")
    assert accessmap.parse_lookup(result.stdout_text) == "RELAY"
    missing = Mta(mta_server).map_lookup("access", "ClientRate:192.0.2.99")
    assert accessmap.parse_lookup(missing.stdout_text) is None


def test_a_lookup_key_with_a_newline_never_reaches_sendmail(mta_server):
    with pytest.raises(ValueError):
        Mta(mta_server).map_lookup("access", "Connect:127.0.0.1\n/map aliases root")


# Each tag with a valid key and value, to put a hostile value beside.
NEW_TAGS = {
    "TLS_Rcpt": ("user@example.org", "VERIFY:112+CN:mx.example.org"),
    "TLS_Srv": ("mx.example.org", "ENCR:128"),
    "TLS_Clt": ("10.1", "PERM+VERIFY"),
    "Srv_Features": ("192.0.2", "V l"),
    "Clt_Features": ("", "S"),
}
# A row makemap reads as one key and one value, each a plain token (feature letters: single-letter words).
ONE_ROW = re.compile(
    r"^(?P<tag>[A-Za-z_]+):(?P<key>[A-Za-z0-9.:@!%&*+/=?^_{|}~-]*)\t(?P<value>[A-Za-z0-9.:@_+/=*-]+( [A-Za-z])*)\n$"
)


@pytest.mark.parametrize("tag", sorted(NEW_TAGS))
def test_no_hostile_key_or_value_splits_a_tls_or_features_row(tag, tmp_path):
    canary = tmp_path / "canary"
    good_key, good_value = NEW_TAGS[tag]
    accepted = []
    for hostile in hostile_values(str(canary)):
        for key, value in ((hostile, good_value), (good_key, hostile)):
            try:
                row = accessmap.clean_entry(tag, key, value)
            except ValidationError as exc:
                assert exc.messages and all(exc.messages)
                continue
            accepted.append(row)
            found = ONE_ROW.match(accessmap.render([row]))
            assert found and found["tag"] == tag, row
            assert not FORBIDDEN_IN_A_ROW.search(found["key"] + found["value"].replace(" ", "")), row
    assert not canary.exists()
    # What passes is a plain host or domain name as the key (a word like dnl.example.com is a
    # domain to makemap; the access map never goes through m4), never a hostile value.
    assert all(value in (good_value,) for _, _, value in accepted), accepted


FORBIDDEN_IN_A_ROW = re.compile(r"[\s\x00-\x1f\x7f\"'`$#,;<>\\()\[\]]|[^\x00-\x7f]")


ACCESS_FILE = """\
# policy for partners
TLS_Rcpt:darth@endmail.org\tENCR:112+CN:smtp.endmail.org
TLS_Rcpt:postmaster@\tVERIFY
TLS_Rcpt:secure.example\tPERM+VERIFY:128+CS:/C=US/O=Example/CN=mx.secure.example++CI:/O=Example+20Test/CN=Example+20CA
TLS_Rcpt:\tENCR:128
TLS_Srv:safe.example.net\tVERIFY+CN++CITag:MyCA
MyCA:/C=US/ST=CA/O=safe/CN=example.net/\tOK
Srv_Features:my.domain\tv
Srv_Features:\tV
Srv_Features:10.1\tA l
Clt_Features:\tM
Clt_Features:broken.sts D
Srv_Features:192.0.2.9\tVl
TLS_Rcpt:@example.com\tVERIFY
Connect:127.0.0.1\tRELAY
"""


def test_an_access_file_with_tls_and_features_rows_imports_without_losing_a_line(mta_server):
    from mailadmin import config

    rows = config.import_access(mta_server, ACCESS_FILE)
    rendered = config.access_text(mta_server)

    assert rows == 11
    assert sorted(rendered.splitlines()) == sorted(
        # the one row written with a space between key and value comes back with the tab
        line.replace("broken.sts D", "broken.sts\tD")
        for line in ACCESS_FILE.splitlines()
    )
    # Kept as they were, not made rows: a tag the console does not manage, the comment, a value
    # sendmail would read as V alone, and a key tls_rcpt never looks up.
    assert mta_server.access_unmanaged == (
        "# policy for partners\n"
        "MyCA:/C=US/ST=CA/O=safe/CN=example.net/\tOK\n"
        "Srv_Features:192.0.2.9\tVl\n"
        "TLS_Rcpt:@example.com\tVERIFY\n"
    )
    assert config.import_access(mta_server, rendered) == rows
    assert config.access_text(mta_server) == rendered


def test_sendmail_reads_back_the_rows_as_rendered(instance_files):
    from pathlib import Path

    from mailadmin.mta.files import write_atomically

    server = instance_files
    rows = [
        accessmap.clean_entry("TLS_Rcpt", "user@example.org", "verify:112+cn:mx.example.org++ci:/CN=Example+20CA"),
        accessmap.clean_entry("Srv_Features", "10.1", "V  l"),
        accessmap.clean_entry("Clt_Features", "", "S M"),
    ]
    write_atomically(Path(server.access_path), accessmap.render(rows).encode(), mode=0o644)
    Mta(server).makemap("hash", Path(server.access_path))
    looked_up = {
        key: accessmap.parse_lookup(Mta(server).map_lookup("access", key).stdout_text)
        for key in ("TLS_Rcpt:user@example.org", "Srv_Features:10.1", "Clt_Features:")
    }
    assert looked_up == {
        "TLS_Rcpt:user@example.org": "VERIFY:112+CN:mx.example.org++CI:/CN=Example+20CA",
        "Srv_Features:10.1": "V l",
        "Clt_Features:": "S M",
    }


def test_a_lookup_key_is_checked_without_a_value():
    assert accessmap.clean_key("TLS_Rcpt", "user@") == "user@"
    assert accessmap.clean_key("Srv_Features", "") == ""
    with pytest.raises(ValidationError):
        accessmap.clean_key("TLS_Rcpt", "@example.org")
    with pytest.raises(ValidationError):
        accessmap.clean_key("Connect", "")
