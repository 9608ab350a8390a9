"""A minimal client of :mod:`quorus.raft.kvserver`: raw framed msgpack over one TCP connection,
following redirects to the leader and moving on when a server dies.

Deliberately thin (no HTTP, no per-request allocation beyond the frame) so that benchmarks
measure the cluster, not the client. One request at a time per client; run several clients for
concurrency.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import anyio
from quorus.core.wire import FramedStream, WireError
from quorus.raft.transport import split_address


class OutcomeUnknown(Exception):
    """The request may or may not have taken effect (the connection died, or time ran out)."""


class RequestFailed(Exception):
    """The server answered with an error: the request did not take effect."""


class KeyValueClient:
    """Talks to the cluster whose client addresses are ``clients`` (id → ``host:port``)."""

    def __init__(self, clients: dict[str, str], token: str, *, timeout: float = 5.0) -> None:
        self.clients = dict(clients)
        self.token = token
        self.timeout = timeout
        self._framed: FramedStream | None = None
        self._server: str | None = None
        self._ids = itertools.count(1)
        self.redirects = 0

    async def __aenter__(self) -> KeyValueClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._framed is not None:
            framed, self._framed = self._framed, None
            with anyio.CancelScope(shield=True):
                await framed.aclose()

    async def _connect(self, server: str) -> FramedStream:
        host, port = split_address(self.clients[server])
        stream = await anyio.connect_tcp(host, port)
        framed = FramedStream(stream, max_frame_size=1 << 20)
        await framed.send({"token": self.token})
        reply = await framed.receive()
        if not isinstance(reply, dict) or "ok" not in reply:
            await framed.aclose()
            raise RequestFailed(f"server {server} refused the client: {reply}")
        return framed

    async def put(self, key: str, value: Any) -> Any:
        return await self.request("put", key, value)

    async def get(self, key: str) -> Any:
        return await self.request("get", key)

    async def cas(self, key: str, expected: Any, new: Any) -> bool:
        return bool(await self.request("cas", key, expected, new))

    async def request(self, op: str, key: str, *args: Any) -> Any:
        """Send one request until a server answers it; :class:`OutcomeUnknown` if that may
        have happened without an answer, :class:`RequestFailed` if it certainly failed."""
        sent_once = False
        with anyio.move_on_after(self.timeout) as scope:
            while True:
                if self._framed is None:
                    server = self._server or random.choice(list(self.clients))
                    try:
                        self._framed = await self._connect(server)
                        self._server = server
                    except (OSError, WireError):
                        self._server = None
                        await anyio.sleep(0.05)
                        continue
                request_id = next(self._ids)
                try:
                    await self._framed.send([request_id, op, key, *args])
                    sent_once = True
                    while True:
                        reply = await self._framed.receive()
                        if reply[0] == request_id:
                            break
                except (OSError, WireError, anyio.BrokenResourceError):
                    await self.close()
                    self._server = None
                    if sent_once and op != "get":
                        # The server may have appended the write before dying: sending it
                        # again could apply it twice. Only the caller can decide.
                        raise OutcomeUnknown(f"{op} {key!r}: the connection died") from None
                    continue
                status = reply[1]
                if status == "ok":
                    return reply[2]
                if status == "unknown":
                    await self.close()
                    self._server = reply[2] if reply[2] in self.clients else None
                    if op == "get":
                        continue
                    raise OutcomeUnknown(f"{op} {key!r}: leadership changed; it may have committed")
                if status == "redirect":
                    self.redirects += 1
                    # A redirect means the request was not accepted there; no effect.
                    await self.close()
                    leader = reply[2]
                    self._server = leader if leader in self.clients else None
                    if leader is None:
                        await anyio.sleep(0.02)
                    continue
                if op == "get" or "not the leader" in str(reply[2]):
                    await anyio.sleep(0.02)
                    continue
                raise RequestFailed(str(reply[2]))
        assert scope.cancelled_caught
        await self.close()
        if sent_once and op != "get":
            raise OutcomeUnknown(f"{op} {key!r}: no answer within {self.timeout} s")
        raise RequestFailed(f"{op} {key!r}: no server answered within {self.timeout} s")


__all__ = ["KeyValueClient", "OutcomeUnknown", "RequestFailed"]
