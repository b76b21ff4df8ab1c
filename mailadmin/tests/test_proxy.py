"""The client's address behind nginx: trusted from X-Real-IP only on the unix socket."""

from django.test import RequestFactory

from mailadmin.proxy import UnixSocketClientAddress


def address_seen(**meta) -> str:
    request = RequestFactory().get("/", **meta)
    return UnixSocketClientAddress(lambda request: request.META["REMOTE_ADDR"])(request)


def test_a_request_on_the_unix_socket_takes_the_address_nginx_names():
    assert address_seen(REMOTE_ADDR="", HTTP_X_REAL_IP="192.0.2.7") == "192.0.2.7"


def test_a_request_over_tcp_keeps_its_own_address_whatever_it_claims():
    assert address_seen(REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="192.0.2.7") == "127.0.0.1"


def test_a_claimed_address_that_is_not_an_address_is_ignored():
    assert address_seen(REMOTE_ADDR="", HTTP_X_REAL_IP="192.0.2.7, 10.0.0.1") == ""
