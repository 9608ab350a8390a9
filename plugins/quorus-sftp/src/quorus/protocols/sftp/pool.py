"""SSH connections kept per server and user, so transfers to the same place share one login.

A :class:`SessionPool` holds one SSH connection with one SFTP session per :class:`Endpoint`.
SFTP multiplexes requests on handles, so any number of streams (several transfers, several
ranged reads of one file) use the same session at once. A session whose connection was lost
is dropped and the next caller logs in again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncssh

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """Who logs in where. ``credential`` tells apart logins with different passwords
    (a digest, never the password itself)."""

    host: str
    port: int
    username: str
    credential: str = field(default="", repr=False)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sftp://{self.username}@{host}:{self.port}"


@dataclass
class Session:
    """A logged-in connection and its SFTP client."""

    connection: asyncssh.SSHClientConnection
    client: asyncssh.SFTPClient
    #: Streams of this session that are open now.
    streams: int = 0

    @property
    def alive(self) -> bool:
        return not self.connection.is_closed()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.exit()
        self.connection.close()


class SessionPool:
    """One live :class:`Session` per :class:`Endpoint`, made by ``connect`` on demand."""

    def __init__(self, connect: Callable[[Endpoint], Awaitable[Session]]) -> None:
        self._connect = connect
        self._sessions: dict[Endpoint, Session] = {}
        self._locks: dict[Endpoint, asyncio.Lock] = {}
        #: Logins made so far (for tests and diagnostics).
        self.logins = 0

    async def get(self, endpoint: Endpoint) -> Session:
        """The endpoint's session, logging in if there is none or it was lost."""
        session = self._sessions.get(endpoint)
        if session is not None and session.alive:
            return session
        lock = self._locks.setdefault(endpoint, asyncio.Lock())
        async with lock:
            session = self._sessions.get(endpoint)
            if session is not None and session.alive:
                return session
            if session is not None:
                self.discard(session)
            session = await self._connect(endpoint)
            self.logins += 1
            self._sessions[endpoint] = session
            return session

    def discard(self, session: Session) -> None:
        """Forget ``session`` (its connection failed) and close it."""
        for endpoint, known in list(self._sessions.items()):
            if known is session:
                del self._sessions[endpoint]
                log.debug("dropping the SSH connection to %s", endpoint)
        session.close()

    async def aclose(self) -> None:
        """Close every connection."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            session.close()
        for session in sessions:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.connection.wait_closed(), 5)


__all__ = ["Endpoint", "Session", "SessionPool"]
