"""``host:port`` addresses, as every Quorus listener, peer list and controller list writes them."""

from __future__ import annotations


def split_host_port(address: str, *, allow_port_zero: bool = False) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` to ``(host, port)`` (brackets removed).

    Raises :class:`ValueError` when a part is missing or the port is not 1-65535 (0 too, for
    a listener that asks the system for a free port, with ``allow_port_zero``); callers wrap it
    in an error that says which setting was wrong.
    """
    host, colon, port = address.strip().rpartition(":")
    lowest = 0 if allow_port_zero else 1
    if not (colon and host and port.isdigit() and lowest <= int(port) < 65536):
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]"), int(port)


def is_host_port(address: str, *, allow_port_zero: bool = False) -> bool:
    """Whether ``address`` is a valid ``host:port``."""
    try:
        split_host_port(address, allow_port_zero=allow_port_zero)
    except ValueError:
        return False
    return True


__all__ = ["is_host_port", "split_host_port"]
