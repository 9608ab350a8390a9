"""Logged-on SMB connections, pooled per server and user, and credit-aware sending.

One :class:`SmbSession` is a TCP connection, an authenticated session on it and the tree
connects (shares) in use. smbprotocol answers requests on a receiver thread of its own, so
many requests from many streams can be outstanding on one session at once; the only limit
is the server's credits, which :meth:`SmbSession.send` waits for (and asks more of) instead
of failing. Everything here blocks: callers run it in worker threads.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from quorus.core.errors import ConfigurationError, TransientError
from quorus.protocols.smb.errors import connection_lost, translate
from quorus.protocols.smb.settings import DIALECTS, SmbSettings
from smbprotocol.connection import Connection, Dialects
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

log = logging.getLogger(__name__)

#: Credits one session tries to hold: enough for every stream's window of large requests
#: (a 1 MiB request costs 16 credits), far below the 8192 Samba and Windows grant at most.
CREDIT_TARGET = 2048
#: One 64 KiB unit per credit (MS-SMB2 3.1.5.2).
CREDIT_UNIT = 65536


def credit_charge(payload: int) -> int:
    """The credits a READ or WRITE of ``payload`` bytes costs with multi-credit support."""
    return max(1, (max(0, payload - 1) // CREDIT_UNIT) + 1)


class SmbSession:
    """One connection and logged-on session to ``host:port`` with its tree connects."""

    def __init__(self, settings: SmbSettings, host: str, port: int, username: str | None,
                 password: str | None) -> None:
        self.host = host
        self.port = port
        self.settings = settings
        self._send_lock = threading.Lock()
        self._tree_lock = threading.Lock()
        self._trees: dict[str, TreeConnect] = {}
        self.broken = False
        self.connection = Connection(
            uuid.uuid4(), host, port, require_signing=settings.signing == "required")
        dialect = DIALECTS[settings.dialect] if settings.dialect else None
        try:
            self.connection.connect(dialect, timeout=settings.connect_timeout)
        except ValueError as exc:  # smbprotocol's wording for a refused or unreachable port
            raise TransientError(f"smb://{host}:{port}: cannot connect ({exc})") from None
        except Exception as exc:
            self._drop()
            raise translate(exc, f"smb://{host}:{port}: negotiating the dialect") from None
        user = username
        if user is not None and settings.domain and "\\" not in user and "@" not in user:
            user = f"{settings.domain}\\{user}"
        try:
            self.session = Session(
                self.connection, user, password,
                require_encryption=settings.encrypt,
                auth_protocol=settings.auth,
            )
            self.session.connect()
        except Exception as exc:
            self._drop()
            if settings.encrypt and "encryption is required" in str(exc):
                raise ConfigurationError(
                    f"smb://{host}:{port}: encryption was asked for (smb.encrypt=true) but the "
                    f"negotiated dialect 0x{self.connection.dialect:04x} or the server cannot "
                    "encrypt; SMB encryption needs SMB 3") from None
            raise translate(exc, f"smb://{host}:{port}: logging on as {username!r}") from None
        log.debug("smb://%s:%s: logged on as %r, dialect 0x%04x, signing %s, encryption %s, "
                  "max read %d, max write %d", host, port, username, self.connection.dialect,
                  self.session.signing_required, self.session.encrypt_data,
                  self.connection.max_read_size, self.connection.max_write_size)

    # --- what the server negotiated ------------------------------------------------------

    @property
    def max_read(self) -> int:
        return int(self.connection.max_read_size)

    @property
    def max_write(self) -> int:
        return int(self.connection.max_write_size)

    @property
    def multi_credit(self) -> bool:
        return bool(self.connection.supports_multi_credit)

    def block_size(self, limit: int) -> int:
        """The size of one READ or WRITE: the configured block within the server's limit."""
        if not self.multi_credit:
            return min(limit, CREDIT_UNIT)  # SMB 2.0.2: one credit, 64 KiB per request
        return max(CREDIT_UNIT, min(self.settings.block_size, limit))

    # --- shares --------------------------------------------------------------------------

    def tree(self, share: str) -> TreeConnect:
        """The tree connect of ``share``, made on first use."""
        key = share.lower()
        with self._tree_lock:
            tree = self._trees.get(key)
            if tree is None:
                tree = TreeConnect(self.session, rf"\\{self.host}\{share}")
                # SMB 3.1.1 requires a signed TREE_CONNECT even when the session is not
                # otherwise signed (MS-SMB2 3.2.4.2.4); smbprotocol signs by session only.
                sign_once = (self.connection.dialect >= Dialects.SMB_3_1_1
                             and not self.session.signing_required
                             and not self.session.encrypt_data)
                try:
                    if sign_once:
                        self.session.signing_required = True
                    tree.connect()
                except Exception as exc:
                    if connection_lost(exc):
                        self.broken = True
                    raise translate(exc, f"smb://{self.host}:{self.port}/{share}") from None
                finally:
                    if sign_once:
                        self.session.signing_required = False
                self._trees[key] = tree
            return tree

    # --- sending within the granted credits ----------------------------------------------

    def send(self, message: Any, tree: TreeConnect, payload: int = 0) -> Any:
        """Send ``message`` on ``tree`` once the server's credits allow; return the Request.

        ``payload`` is the size of a READ or WRITE's data, which decides its credit charge.
        Each request asks for the credits still missing to :data:`CREDIT_TARGET`, so a
        session soon holds enough for many large requests in flight.
        """
        charge = credit_charge(payload) if self.multi_credit else 1
        deadline = time.monotonic() + self.settings.timeout
        window = self.connection.sequence_window
        for _ in range(1_000_000):  # bounded by the deadline below long before this
            with self._send_lock:
                with self.connection.sequence_lock:
                    available = window["high"] - window["low"]
                if available >= charge:
                    wanted = charge + max(0, CREDIT_TARGET - available) if self.multi_credit else 1
                    return self.connection.send(
                        message, sid=self.session.session_id, tid=tree.tree_connect_id,
                        credit_request=min(wanted, 512))
            # Credits come back with the responses to requests already in flight.
            if time.monotonic() > deadline:
                raise TransientError(
                    f"smb://{self.host}:{self.port}: the server granted no credits for "
                    f"{self.settings.timeout:g} s")
            time.sleep(0.0005)
        raise TransientError(f"smb://{self.host}:{self.port}: no credits")  # pragma: no cover

    def receive(self, request: Any) -> Any:
        """Wait for the response to ``request`` (raising the server's error status)."""
        return self.connection.receive(request, timeout=self.settings.timeout)

    # --- ending --------------------------------------------------------------------------

    def close(self) -> None:
        """Log off and disconnect; a connection already lost is only released."""
        self.broken = True
        try:
            self.connection.disconnect(close=self.connection.transport.connected, timeout=5)
        except Exception as exc:  # the server may be gone already: nothing left to release
            log.debug("smb://%s:%s: error while disconnecting: %s", self.host, self.port, exc)

    def _drop(self) -> None:
        self.broken = True
        try:
            self.connection.disconnect(close=False)
        except Exception as exc:
            log.debug("smb://%s:%s: error while dropping: %s", self.host, self.port, exc)


class SessionPool:
    """Sessions kept open between transfers, one per (host, port, user)."""

    def __init__(self, settings: SmbSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, int, str | None], SmbSession] = {}
        self._connecting: dict[tuple[str, int, str | None], threading.Lock] = {}

    def get(self, host: str, port: int, username: str | None, password: str | None) -> SmbSession:
        """A live session for the endpoint, logged on now if none is pooled."""
        if username is None:
            raise ConfigurationError(
                f"smb://{host}:{port}: no user name; give -o smb.username=NAME (or "
                "smb://NAME@host/...) and smb.password=env:VARIABLE or file:PATH")
        key = (host.lower(), port, username)
        with self._lock:
            connecting = self._connecting.setdefault(key, threading.Lock())
        # One logon at a time per endpoint: concurrent streams share its result.
        with connecting:
            with self._lock:
                session = self._sessions.get(key)
                if session is not None and not session.broken and session.connection.transport.connected:
                    return session
                stale = self._sessions.pop(key, None)
            if stale is not None:
                stale.close()
            session = SmbSession(self.settings, host, port, username, password)
            with self._lock:
                self._sessions[key] = session
            return session

    def discard(self, session: SmbSession) -> None:
        """Forget ``session`` (its connection was lost) and release it."""
        with self._lock:
            for key, pooled in list(self._sessions.items()):
                if pooled is session:
                    del self._sessions[key]
        session.close()

    def close(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close()


__all__ = ["CREDIT_TARGET", "SessionPool", "SmbSession", "credit_charge"]
