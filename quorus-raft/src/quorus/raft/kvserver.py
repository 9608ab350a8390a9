"""A Raft-replicated key-value server: one OS process per member, for the real-process tests
and the benchmarks.

    python -m quorus.raft.kvserver --id a --data /var/lib/kv-a --token env:KV_TOKEN \\
        --members a=127.0.0.1:7001,b=127.0.0.1:7002,c=127.0.0.1:7003 \\
        --clients a=127.0.0.1:8001,b=127.0.0.1:8002,c=127.0.0.1:8003

Clients speak length-prefixed msgpack frames (quorus-core's framing): first ``{"token": T}``,
then requests ``[id, "put", key, value]``, ``[id, "get", key]``, ``[id, "cas", key, old, new]``
(and ``[id, "status", ""]``, this node's view of the cluster, not linearizable, and
``[id, "add_member", node_id, raft_address]`` on the leader),
answered by ``[id, "ok", result]``, ``[id, "redirect", leader_id]`` (this node does not lead;
the client retries there), ``[id, "unknown", leader_id]`` (leadership was lost after the command
was appended: it may still commit) or ``[id, "error", message]``. A client may pipeline requests on one
connection; each is answered once, in any order. Gets are linearizable (ReadIndex).
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from quorus.core import eventloop
from quorus.core.consensus import ConsensusConfig, ConsensusError, NotLeader
from quorus.core.secrets import resolve_secret
from quorus.core.wire import FrameDecoder, WireError, encode_frame
from quorus.raft.kv import KeyValueStateMachine, cas_command, put_command
from quorus.raft.node import RaftNode
from quorus.raft.transport import split_address

log = logging.getLogger("quorus.raft.kvserver")
#: The largest request or reply frame.
MAX_FRAME = 1 << 20


def parse_pairs(text: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, text.split(",")):
        name, sep, address = item.partition("=")
        if not sep:
            raise SystemExit(f"expected name=host:port, got {item!r}")
        split_address(address)
        pairs[name.strip()] = address.strip()
    return pairs


class _Replies:
    """A client connection's replies: written to its non-blocking socket at once, from
    whichever task has the answer (a put's is written by the Raft runtime's completion
    callback, with no task switch); what the socket does not take waits for :meth:`flush`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.backlog = bytearray()
        self.closed = False
        self.wake = anyio.Event()

    def send(self, reply: Any) -> None:
        if self.closed:
            return
        try:
            frame = encode_frame(reply, max_size=MAX_FRAME)
        except WireError as exc:
            request_id = reply[0] if isinstance(reply, list) and reply else None
            frame = encode_frame([request_id, "error", f"the reply cannot be sent: {exc}"])
        if self.backlog:
            self.backlog += frame
            return
        try:
            written = self.sock.send(frame)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError:
            self.closed = True
            self.wake.set()
            return
        if written < len(frame):
            self.backlog += frame[written:]
            self.wake.set()

    async def flush(self) -> None:
        """Write the backlog whenever there is one, until the connection closes."""
        while not self.closed:
            if not self.backlog:
                await self.wake.wait()
                self.wake = anyio.Event()
                continue
            await anyio.wait_writable(self.sock)
            try:
                written = self.sock.send(self.backlog)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                self.closed = True
                return
            del self.backlog[:written]


class KeyValueServer:
    """Serves clients on raw non-blocking sockets: requests are read in one task per
    connection and puts are proposed straight from it; replies are written by whoever has them
    (see :class:`_Replies`). Reads and membership requests get a task of their own."""

    def __init__(self, node: RaftNode, machine: KeyValueStateMachine, token: str) -> None:
        self.node = node
        self.machine = machine
        self.token = token

    async def serve(self, host: str, port: int, *,
                    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(128)
            listener.setblocking(False)
            task_status.started()
            async with anyio.create_task_group() as tg:
                while True:
                    await anyio.wait_readable(listener)
                    try:
                        sock, _ = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as exc:  # e.g. out of file descriptors: try again soon
                        log.warning("kv server: accept failed: %s", exc)
                        await anyio.sleep(0.1)
                        continue
                    tg.start_soon(self.serve_client, sock)
        finally:
            listener.close()

    async def serve_client(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        replies = _Replies(sock)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(replies.flush)
                await self._read_requests(sock, replies, tg)
                tg.cancel_scope.cancel()
        finally:
            replies.closed = True
            sock.close()

    async def _read_requests(self, sock: socket.socket, replies: _Replies, tg: TaskGroup) -> None:
        """Read and dispatch requests until the client leaves, errs or fails the token."""
        decoder = FrameDecoder(MAX_FRAME)
        greeted = False
        while not replies.closed:
            await anyio.wait_readable(sock)
            try:
                data = sock.recv(256 * 1024)
                requests = decoder.feed(data)
            except (BlockingIOError, InterruptedError):
                continue
            except (OSError, WireError) as exc:
                log.debug("kv server: client connection closed: %s", exc)
                return
            if not data:
                return
            for request in requests:
                if greeted:
                    self._dispatch(request, replies, tg)
                    continue
                token = request.get("token", "") if isinstance(request, dict) else ""
                if not isinstance(token, str) or not hmac.compare_digest(token, self.token):
                    replies.send({"error": "wrong token"})
                    return
                replies.send({"ok": self.node.node_id})
                greeted = True

    def _dispatch(self, request: Any, replies: _Replies, tg: TaskGroup) -> None:
        if isinstance(request, list) and len(request) >= 3 and request[1] in ("put", "cas"):
            op = request[1]
            if op == "put" and len(request) == 4:
                command = put_command(request[2], request[3])
            elif op == "cas" and len(request) == 5:
                command = cas_command(request[2], request[3], request[4])
            else:
                replies.send([request[0], "error", f"malformed {op} request"])
                return
            request_id = request[0]

            def done(result: Any, error: BaseException | None) -> None:
                replies.send(self._reply(request_id, result, error))

            self.node.propose_nowait(command, done)
            return
        tg.start_soon(self._answer, replies, request)

    @staticmethod
    def _reply(request_id: Any, result: Any, error: BaseException | None) -> list[Any]:
        if error is None:
            return [request_id, "ok", result]
        if isinstance(error, NotLeader):
            return [request_id, "unknown" if error.maybe_committed else "redirect", error.leader_id]
        return [request_id, "error", str(error)]

    async def _answer(self, replies: _Replies, request: Any) -> None:
        request_id = request[0] if isinstance(request, list) and request else None
        try:
            reply = self._reply(request_id, await self._execute(request), None)
        except (ConsensusError, ValueError, TypeError, IndexError, TimeoutError) as exc:
            reply = self._reply(request_id, None, exc)
        replies.send(reply)

    async def _execute(self, request: Any) -> Any:
        if not isinstance(request, list) or len(request) < 3:
            raise ValueError("a request is [id, op, key, ...]")
        op, key = request[1], request[2]
        if op == "status":
            return self.node.status()
        if op == "add_member" and len(request) == 4:
            # Membership: key is the new node's id, the value its Raft address.
            await self.node.add_member(key, request[3])
            return self.node.status()
        if op == "get":
            await self.node.read_barrier()
            return self.machine.get(key)
        raise ValueError(f"unknown request {op!r}")


async def run(args: argparse.Namespace) -> None:
    members = parse_pairs(args.members)
    clients = parse_pairs(args.clients)
    secret = resolve_secret(args.token)
    token = secret.reveal() if secret else ""
    options: dict[str, Any] = {"token": token, "tick_ms": args.tick_ms, "join": args.join}
    if args.listen:
        options["listen"] = args.listen
    machine = KeyValueStateMachine()
    config = ConsensusConfig(
        node_id=args.id,
        members=members,
        data_dir=Path(args.data),
        storage=args.storage,
        snapshot_every=args.snapshot_every,
        options=options,
    )
    node = RaftNode(config, machine)
    host, port = split_address(clients[args.id])
    async with node, anyio.create_task_group() as tg:
        server = KeyValueServer(node, machine, token)
        await tg.start(server.serve, host, port)
        print(f"ready {args.id}", flush=True)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                tg.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m quorus.raft.kvserver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--id", required=True)
    parser.add_argument("--members", required=True, help="id=host:port,... (Raft peers)")
    parser.add_argument("--clients", required=True, help="id=host:port,... (client ports)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--token", required=True, help="text, env:NAME or file:/path")
    parser.add_argument("--storage", default="file")
    parser.add_argument("--tick-ms", type=int, default=50)
    parser.add_argument("--snapshot-every", type=int, default=10_000)
    parser.add_argument("--join", action="store_true")
    parser.add_argument("--listen")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    profile_to = os.environ.get("QUORUS_KV_PROFILE")
    if not profile_to:
        eventloop.run(run, args)
        return
    # For finding hot spots: the profile of this node is written when it stops (SIGTERM).
    import cProfile

    with cProfile.Profile() as profiler:
        eventloop.run(run, args)
    profiler.dump_stats(f"{profile_to}.{args.id}")


if __name__ == "__main__":
    main()
