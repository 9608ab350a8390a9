"""Raft as separate OS processes: kill -9 the leader repeatedly under concurrent load, restart
every node at once, and check that every acknowledged write survived and that the recorded
history is linearizable."""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path

import anyio
import pytest
from quorus.raft.kvclient import OutcomeUnknown, RequestFailed
from quorus.raft.linearizability import Operation, OpKind, check_history

from tests.raft_cluster import ProcessCluster

pytestmark = pytest.mark.anyio

KEYS = ["a", "b", "c"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def run_load(cluster: ProcessCluster, history: list[Operation], acked: dict[str, int],
                   stop: anyio.Event, clients: int) -> None:
    start = time.monotonic()
    values = itertools.count(1)

    async def client(number: int) -> None:
        rng = random.Random(number)
        async with cluster.client(timeout=3.0) as kv:
            while not stop.is_set():
                key = rng.choice(KEYS)
                roll = rng.random()
                invoke = time.monotonic() - start
                try:
                    if roll < 0.45:
                        value = next(values)
                        await kv.put(key, value)
                        op = Operation(OpKind.PUT, key, invoke, time.monotonic() - start, value=value, client=number)
                    elif roll < 0.6:
                        expected, value = rng.randint(1, 50), next(values)
                        swapped = await kv.cas(key, expected, value)
                        op = Operation(OpKind.CAS, key, invoke, time.monotonic() - start,
                                       value=value, expected=expected, result=swapped, client=number)
                    else:
                        result = await kv.get(key)
                        op = Operation(OpKind.GET, key, invoke, time.monotonic() - start, result=result, client=number)
                except OutcomeUnknown:
                    if roll < 0.45:
                        op = Operation(OpKind.PUT, key, invoke, None, value=value, client=number)
                    else:
                        op = Operation(OpKind.CAS, key, invoke, None, value=value, expected=expected, client=number)
                except RequestFailed:
                    continue  # definitely not applied (or a read that got no answer)
                history.append(op)
            # A key of this client's own, written once: it must survive everything.
            unique = f"ack-{number}"
            try:
                await kv.put(unique, number)
                acked[unique] = number
            except (OutcomeUnknown, RequestFailed):
                pass

    async with anyio.create_task_group() as tg:
        for number in range(clients):
            tg.start_soon(client, number)


@pytest.mark.parametrize(("size", "kills"), [(3, 3), (5, 2)])
async def test_kill_the_leader_under_load_then_restart_everything(tmp_path: Path, size: int, kills: int) -> None:
    cluster = ProcessCluster(tmp_path, size, snapshot_every=500)
    history: list[Operation] = []
    acked: dict[str, int] = {}
    try:
        cluster.start_all()  # inside: nodes started before one that fails are stopped too
        await cluster.leader()
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_load, cluster, history, acked, stop, 8)
            for _ in range(kills):
                await anyio.sleep(1.0)
                leader = await cluster.leader()
                cluster.kill(leader)
                await anyio.sleep(0.5)
                cluster.start(leader)
            await anyio.sleep(1.0)
            stop.set()

        # Every node at once: a crash of the whole cluster.
        cluster.stop_all()
        cluster.start_all()
        await cluster.leader()
        async with cluster.client(timeout=10) as kv:
            for key, value in acked.items():
                assert await kv.get(key) == value, f"acknowledged write {key}={value} lost"
            end = time.monotonic()
            for key in KEYS:
                # Final reads join the history: the state after the restart must fit it too.
                result = await kv.get(key)
                history.append(Operation(OpKind.GET, key, end + 1000, end + 1001, result=result, client=999))
    finally:
        cluster.stop_all()

    completed = [op for op in history if op.ret is not None and op.kind is not OpKind.GET]
    assert len(completed) > 50, f"too little load got through: {len(completed)} writes"
    assert len(acked) == 8
    verdict = check_history(history, timeout=60)
    assert verdict.ok and not verdict.timed_out, f"history not linearizable on key {verdict.key}"
