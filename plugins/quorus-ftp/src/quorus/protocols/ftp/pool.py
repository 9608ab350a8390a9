"""Logged-in control connections, kept per server and user and reused across transfers.

An FTP login costs several round trips (and a TLS handshake for ``ftps``), so a connection
that ended its last command cleanly goes back to the pool. At most ``max_connections`` are
out at once per endpoint; more callers wait. A connection idle for a while is checked with
``NOOP`` before it is handed out again, since servers drop idle sessions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aioftp
import anyio
from quorus.core.secrets import Secret


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to log in. The password is kept out of ``repr`` and equality."""

    tls: bool
    host: str
    port: int
    username: str
    password: Secret | None = field(default=None, compare=False, repr=False)


@dataclass
class Connection:
    """One logged-in control connection and when it was last used."""

    client: aioftp.Client
    endpoint: Endpoint
    last_used: float = field(default_factory=time.monotonic)

    def dropped(self) -> bool:
        """True when the server has already closed the connection (seen without a round trip:
        the event loop keeps reading the socket, so its end or error is already recorded)."""
        stream = self.client._stream
        if stream is None:
            return True
        return (
            stream.reader.at_eof()
            or stream.reader.exception() is not None
            or stream.writer.transport.is_closing()
        )

    def close(self) -> None:
        """Drop the connection at once, without a TLS close_notify exchange."""
        stream = self.client._stream
        if stream is not None:
            stream.writer.transport.abort()


Connect = Callable[[Endpoint], Awaitable[aioftp.Client]]


class _Slot:
    def __init__(self, limit: int) -> None:
        self.limit = anyio.Semaphore(limit)
        self.idle: list[Connection] = []


class ConnectionPool:
    """Pooled control connections; ``connect`` logs a new one in."""

    def __init__(self, connect: Connect, *, max_connections: int, idle_check: float) -> None:
        self._connect = connect
        self._max = max_connections
        self._idle_check = idle_check
        self._slots: dict[Endpoint, _Slot] = {}
        self._closed = False
        #: Logins performed so far: tests check that connections are reused.
        self.logins = 0

    async def acquire(self, endpoint: Endpoint) -> Connection:
        """A logged-in connection to ``endpoint`` for the caller's sole use."""
        slot = self._slots.setdefault(endpoint, _Slot(self._max))
        await slot.limit.acquire()
        try:
            while slot.idle:
                connection = slot.idle.pop()
                if connection.dropped():
                    connection.close()
                    continue
                if time.monotonic() - connection.last_used < self._idle_check:
                    return connection
                try:
                    await connection.client.command("NOOP", "2xx")
                except Exception:  # any failure means: log in afresh
                    connection.close()
                    continue
                return connection
            client = await self._connect(endpoint)
            self.logins += 1
            return Connection(client, endpoint)
        except BaseException:
            slot.limit.release()
            raise

    def release(self, connection: Connection, *, reusable: bool) -> None:
        """Give ``connection`` back: kept when ``reusable`` (its last reply was read)."""
        slot = self._slots[connection.endpoint]
        if reusable and not self._closed:
            connection.last_used = time.monotonic()
            slot.idle.append(connection)
        else:
            connection.close()
        slot.limit.release()

    async def aclose(self) -> None:
        """Log out of every idle connection; connections still out close on release."""
        self._closed = True
        for slot in self._slots.values():
            idle, slot.idle = slot.idle, []
            for connection in idle:
                with anyio.move_on_after(2):
                    with contextlib.suppress(Exception):  # closing anyway
                        await connection.client.quit()
                        await connection.client.stream.writer.wait_closed()
                connection.close()


__all__ = ["Connection", "ConnectionPool", "Endpoint"]
