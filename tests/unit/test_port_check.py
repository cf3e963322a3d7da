"""The port probe behind `garden up`'s pre-check and the test teardown."""

from __future__ import annotations

import socket

import pytest

from cluster._ray import check_port_free
from cluster.exceptions import PortInUseError

pytestmark = pytest.mark.unit


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_listening_port_is_in_use() -> None:
    with _listener() as server:
        port = server.getsockname()[1]
        with pytest.raises(PortInUseError, match=str(port)):
            check_port_free("127.0.0.1", port)


def test_connections_left_in_time_wait_by_a_stopped_server_do_not_count() -> None:
    """A server that closed its connections first leaves them in TIME_WAIT.

    A plain bind fails on such a port on Linux; a restarted server (which sets
    SO_REUSEADDR) would listen there, so the probe must say it is free.
    """
    server = _listener()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server side closes first: its end goes to TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    check_port_free("127.0.0.1", port)
