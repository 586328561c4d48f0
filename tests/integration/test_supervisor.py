"""The supervisor's listeners: one port for every process, and a clear error when it is taken."""

from __future__ import annotations

import socket

import pytest

from gateway.errors import ConfigError
from gateway.supervisor import bind_listeners


def test_every_process_listens_on_the_same_port_also_when_port_0_picks_one() -> None:
    """Port 0 becomes one free port, shared by the listeners of all processes."""
    sets = bind_listeners("127.0.0.1", 0, 3)
    try:
        ports = {sock.getsockname()[1] for listeners in sets for sock in listeners}

        assert [len(listeners) for listeners in sets] == [1, 1, 1]
        assert len(ports) == 1 and ports != {0}
    finally:
        for listeners in sets:
            for sock in listeners:
                sock.close()


def test_a_port_in_use_is_a_config_error_naming_host_and_port() -> None:
    """A port another program listens on stops the start with what to change."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(ConfigError, match=rf"cannot listen on 127.0.0.1:{port} .*in use"):
            bind_listeners("127.0.0.1", port, 2)


def test_a_port_another_supervisor_shares_is_a_config_error_too() -> None:
    """Listeners with SO_REUSEPORT do not let a second gateway quietly share their port."""
    running = bind_listeners("127.0.0.1", 0, 2)
    try:
        port = running[0][0].getsockname()[1]

        with pytest.raises(ConfigError, match=rf"cannot listen on 127.0.0.1:{port} .*in use"):
            bind_listeners("127.0.0.1", port, 2)
    finally:
        for listeners in running:
            for sock in listeners:
                sock.close()
