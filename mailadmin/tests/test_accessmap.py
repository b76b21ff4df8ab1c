import pytest
from django.core.exceptions import ValidationError

from mailadmin.cf import accessmap
from mailadmin.mta.gateway import Mta

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
