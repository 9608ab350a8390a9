"""free_port: ports a test server can be restarted on, never handed to outgoing connections."""

from __future__ import annotations

import socket

import pytest
from quorus.core.testing import fixtures
from quorus.core.testing.fixtures import free_port


def test_ports_are_outside_the_ephemeral_range_distinct_and_bindable() -> None:
    low, high = fixtures._ephemeral_ports()
    ports = [free_port() for _ in range(40)]
    assert len(set(ports)) == len(ports)
    for port in ports:
        assert not low <= port <= high
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]

        class Always:
            calls = 0

            def randrange(self, start: int, stop: int) -> int:
                Always.calls += 1
                return busy if Always.calls == 1 else start + Always.calls

        monkeypatch.setattr(fixtures, "_PORTS", Always())
        monkeypatch.setattr(fixtures, "_ephemeral_ports", lambda: (busy + 1, busy + 2))
        port = free_port()
    assert port != busy and Always.calls >= 2
