"""The one ``host:port`` parser."""

from __future__ import annotations

import pytest
from quorus.core.netaddr import is_host_port, split_host_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:7070", ("127.0.0.1", 7070)), ("[::1]:80", ("::1", 80)), (" h:1 ", ("h", 1))],
)
def test_valid_addresses(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["nohost", ":80", "h:", "h:http", "h:0", "h:65536"])
def test_invalid_addresses(text: str) -> None:
    assert not is_host_port(text)
    with pytest.raises(ValueError, match="expected host:port"):
        split_host_port(text)


def test_port_zero_only_where_a_listener_may_ask_for_any_port() -> None:
    assert split_host_port("127.0.0.1:0", allow_port_zero=True) == ("127.0.0.1", 0)
