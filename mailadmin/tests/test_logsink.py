import socket
import threading

import pytest

from mailadmin.mta import logsink
from testing.processes import wait_for


def test_syslog_datagrams_land_in_the_file_without_their_priority(tmp_path):
    sock_path, log_file = str(tmp_path / "log.sock"), tmp_path / "syslog"
    thread = threading.Thread(target=logsink.serve, args=(sock_path, log_file), daemon=True)
    thread.start()
    wait_for(lambda: logsink.socket_is_live(sock_path), 5, "the sink socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
        client.sendto(
            b"<22>Nov 24 18:15:52 sm-local[25793]: 6AOIFqj8025793: to=<a@b.example>, stat=queued\n", sock_path
        )
        client.sendto(b"<22>Nov 24 18:15:53 sm-local[25793]: two\nlines", sock_path)
    wait_for(lambda: log_file.exists() and log_file.read_text().count("\n") == 2, 5, "two log lines")
    assert log_file.read_text().splitlines() == [
        "Nov 24 18:15:52 sm-local[25793]: 6AOIFqj8025793: to=<a@b.example>, stat=queued",
        "Nov 24 18:15:53 sm-local[25793]: two lines",
    ]


def test_a_stale_socket_is_replaced_but_a_live_one_is_not(tmp_path):
    stale = tmp_path / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    leftover.bind(str(stale))
    leftover.close()
    assert not logsink.socket_is_live(str(stale))

    live = tmp_path / "live.sock"
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    holder.bind(str(live))
    try:
        assert logsink.socket_is_live(str(live))
        with pytest.raises(logsink.SinkError, match="already has a syslog daemon"):
            logsink.serve(str(live), tmp_path / "x")
        assert not (tmp_path / "x").exists()
    finally:
        holder.close()
