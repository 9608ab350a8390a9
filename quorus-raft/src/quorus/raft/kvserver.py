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
import contextlib
import hmac
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteStream
from quorus.core import eventloop
from quorus.core.consensus import ConsensusConfig, ConsensusError, NotLeader
from quorus.core.secrets import resolve_secret
from quorus.core.wire import FramedStream, WireError
from quorus.raft.kv import KeyValueStateMachine, cas_command, put_command
from quorus.raft.node import RaftNode
from quorus.raft.transport import split_address

log = logging.getLogger("quorus.raft.kvserver")


def parse_pairs(text: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, text.split(",")):
        name, sep, address = item.partition("=")
        if not sep:
            raise SystemExit(f"expected name=host:port, got {item!r}")
        split_address(address)
        pairs[name.strip()] = address.strip()
    return pairs


class KeyValueServer:
    def __init__(self, node: RaftNode, machine: KeyValueStateMachine, token: str) -> None:
        self.node = node
        self.machine = machine
        self.token = token

    async def serve_client(self, stream: ByteStream) -> None:
        framed = FramedStream(stream, max_frame_size=1 << 20)
        async with framed.stream, anyio.create_task_group() as tg:
            try:
                hello = await framed.receive()
                token = hello.get("token", "") if isinstance(hello, dict) else ""
                if not isinstance(token, str) or not hmac.compare_digest(token, self.token):
                    await framed.send({"error": "wrong token"})
                    return
                await framed.send({"ok": self.node.node_id})
                while True:
                    request = await framed.receive()
                    tg.start_soon(self._answer, framed, request)
            except (WireError, anyio.BrokenResourceError, OSError):
                pass
            finally:
                tg.cancel_scope.cancel()

    async def _answer(self, framed: FramedStream, request: Any) -> None:
        try:
            reply = [request[0], "ok", await self._execute(request)]
        except NotLeader as exc:
            status = "unknown" if exc.maybe_committed else "redirect"
            reply = [request[0], status, exc.leader_id]
        except (ConsensusError, ValueError, TypeError, IndexError, TimeoutError) as exc:
            reply = [request[0] if isinstance(request, list) and request else None, "error", str(exc)]
        with contextlib.suppress(WireError, anyio.BrokenResourceError, OSError):
            await framed.send(reply)

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
        if op == "put" and len(request) == 4:
            return await self.node.propose(put_command(key, request[3]))
        if op == "cas" and len(request) == 5:
            return await self.node.propose(cas_command(key, request[3], request[4]))
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
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        tg.start_soon(listener.serve, server.serve_client)
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
