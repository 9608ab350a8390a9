"""The anyio runtime: real RaftNodes talking over loopback TCP in one process, with durable
file stores: elections, replication, NotLeader, reads, failover, membership and snapshots."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from quorus.core.consensus import ConsensusConfig, ConsensusUnavailable, NotLeader, load_backend
from quorus.core.hooks import hookimpl, plugin_manager
from quorus.core.testing.fixtures import free_port
from quorus.raft.kv import KeyValueStateMachine, put_command
from quorus.raft.node import RaftNode

pytestmark = pytest.mark.anyio

OPTIONS = {"token": "test-cluster-token"}


class Cluster:
    """Nodes in one process, each run by its own task (so any one can stop in any order)."""

    def __init__(self, root: Path, ids: list[str], task_group: anyio.abc.TaskGroup) -> None:
        self.root = root
        self.members = {i: f"127.0.0.1:{free_port()}" for i in ids}
        self.nodes: dict[str, RaftNode] = {}
        self.machines: dict[str, KeyValueStateMachine] = {}
        self.stops: dict[str, anyio.Event] = {}
        self.stopped: dict[str, anyio.Event] = {}
        self.task_group = task_group

    def config(self, node_id: str, members: dict[str, str] | None = None, **options: Any) -> ConsensusConfig:
        return ConsensusConfig(
            node_id=node_id,
            members=members if members is not None else self.members,
            data_dir=self.root / node_id,
            snapshot_every=options.pop("snapshot_every", 10_000),
            options={**OPTIONS, **options},
        )

    async def start(self, node_id: str, members: dict[str, str] | None = None, **options: Any) -> RaftNode:
        machine = KeyValueStateMachine()
        node = RaftNode(self.config(node_id, members, **options), machine)
        stop, stopped = anyio.Event(), anyio.Event()

        async def run(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            try:
                async with node:
                    task_status.started()
                    await stop.wait()
            finally:
                stopped.set()

        await self.task_group.start(run)
        self.nodes[node_id], self.machines[node_id] = node, machine
        self.stops[node_id], self.stopped[node_id] = stop, stopped
        return node

    async def stop(self, node_id: str) -> None:
        self.stops.pop(node_id).set()
        await self.stopped.pop(node_id).wait()
        self.nodes.pop(node_id)

    async def leader(self, exclude: str | None = None) -> RaftNode:
        with anyio.fail_after(10):
            while True:
                leaders = [n for i, n in self.nodes.items() if n.is_leader and i != exclude]
                if len(leaders) == 1:
                    return leaders[0]
                await anyio.sleep(0.02)

    async def put(self, key: str, value: Any) -> None:
        """Write through whichever node leads, retrying across leader changes as a client
        does (a put is idempotent, so a retry of a write that did commit is harmless)."""
        with anyio.fail_after(20):
            while True:
                leader = await self.leader()
                try:
                    await leader.propose(put_command(key, value))
                    return
                except NotLeader:
                    await anyio.sleep(0.05)

    async def converge(self, key: str, value: Any) -> None:
        with anyio.fail_after(10):
            while any(m.get(key) != value for i, m in self.machines.items() if i in self.nodes):  # noqa: ASYNC110 - polling state
                await anyio.sleep(0.02)


@asynccontextmanager
async def cluster(root: Path, ids: list[str], **options: Any) -> AsyncIterator[Cluster]:
    async with anyio.create_task_group() as tg:
        c = Cluster(root, ids, tg)
        try:
            for node_id in ids:
                await c.start(node_id, **options)
            yield c
        finally:
            for node_id in list(c.stops):
                await c.stop(node_id)


async def test_loaded_by_name(tmp_path: Path) -> None:
    config = ConsensusConfig(node_id="a", members={"a": f"127.0.0.1:{free_port()}"},
                             data_dir=tmp_path, options=OPTIONS)
    backend = load_backend("raft", config, KeyValueStateMachine())
    assert isinstance(backend, RaftNode)


async def test_a_single_node_cluster_commits_alone(tmp_path: Path) -> None:
    async with cluster(tmp_path, ["a"]) as c:
        leader = await c.leader()
        assert await leader.propose(put_command("k", 1)) is None
        assert await leader.propose(put_command("k", 2)) == 1


async def test_three_nodes_replicate_and_followers_redirect(tmp_path: Path) -> None:
    async with cluster(tmp_path, ["a", "b", "c"]) as c:
        leader = await c.leader()
        results = []

        async def put(i: int) -> None:
            results.append(await leader.propose(put_command(f"k{i % 7}", i)))

        async with anyio.create_task_group() as tg:
            for i in range(300):
                tg.start_soon(put, i)
        assert len(results) == 300
        # (Which write to k6 came last depends on the event loop's scheduling.)
        await c.converge("k6", c.machines[leader.node_id].get("k6"))
        follower = next(n for n in c.nodes.values() if n is not leader)
        with pytest.raises(NotLeader) as info:
            await follower.propose(put_command("x", 1))
        assert info.value.leader_id == leader.node_id
        assert info.value.leader_address == c.members[leader.node_id]
        # A follower serves linearizable reads after a barrier through the leader.
        await leader.propose(put_command("fresh", "yes"))
        await follower.read_barrier()
        assert c.machines[follower.node_id].get("fresh") == "yes"
        # Group commit: far fewer fsyncs than proposals on the leader.
        assert leader.fsyncs < 300


async def test_followers_share_fsyncs_among_concurrent_proposals(tmp_path: Path) -> None:
    """Followers step appends as they are read (no driver hop) but still write and sync a
    whole read's worth at once."""
    async with cluster(tmp_path, ["a", "b", "c"]) as c:
        leader = await c.leader()
        followers = [n for n in c.nodes.values() if n is not leader]
        before = {n.node_id: n.fsyncs for n in followers}

        async def put(i: int) -> None:
            await leader.propose(put_command(f"k{i}", i))

        async with anyio.create_task_group() as tg:
            for i in range(300):
                tg.start_soon(put, i)
        await c.converge("k299", 299)
    for follower in followers:
        assert follower.fsyncs - before[follower.node_id] < 30


class SlowSnapshots(KeyValueStateMachine):
    """Its snapshot's bytes are produced only once ``release`` is set (in the writer thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.started = threading.Event()

    def snapshot_view(self) -> Callable[[], Iterator[bytes]]:
        produce = super().snapshot_view()

        def slow() -> Iterator[bytes]:
            self.started.set()
            self.release.wait(10)
            yield from produce()

        return slow


async def test_while_a_snapshot_is_written_fsyncs_leave_the_event_loop(tmp_path: Path) -> None:
    machine = SlowSnapshots()
    config = ConsensusConfig(node_id="a", members={"a": f"127.0.0.1:{free_port()}"},
                             data_dir=tmp_path, snapshot_every=5, options=OPTIONS)
    async with RaftNode(config, machine) as node:
        with anyio.fail_after(5):
            while not node.is_leader:  # noqa: ASYNC110 - polling the role
                await anyio.sleep(0.01)
        store = node._store
        assert store is not None
        blocking_syncs = 0
        sync = store.sync

        def counted_sync() -> None:
            nonlocal blocking_syncs
            blocking_syncs += 1
            sync()

        store.sync = counted_sync  # type: ignore[method-assign]
        for i in range(6):
            await node.propose(put_command(f"k{i}", i))
        with anyio.fail_after(5):
            await anyio.to_thread.run_sync(machine.started.wait)
        inline_before = blocking_syncs
        fsyncs_before = node.fsyncs
        # The snapshot's writer is stuck: writes go on, synced by the worker thread.
        for i in range(10):
            await node.propose(put_command(f"during{i}", i))
        assert blocking_syncs == inline_before
        assert node.fsyncs > fsyncs_before
        machine.release.set()
        with anyio.fail_after(5):
            while node.status()["snapshot_index"] == 0:  # noqa: ASYNC110 - polling the state
                await anyio.sleep(0.01)
        await node.propose(put_command("after", 1))
        assert blocking_syncs > inline_before
    assert machine.get("during9") == 9


async def test_slow_fsyncs_leave_the_event_loop_and_quick_ones_come_back(tmp_path: Path) -> None:
    # A lone write is synced in the loop while fsyncs are quick; once they take milliseconds
    # (a disk other members sync to as well), they go to the worker thread, and come back
    # when the disk is quick again.
    config = ConsensusConfig(node_id="a", members={"a": f"127.0.0.1:{free_port()}"},
                             data_dir=tmp_path, options=OPTIONS)
    async with RaftNode(config, KeyValueStateMachine()) as node:
        with anyio.fail_after(5):
            while not node.is_leader:  # noqa: ASYNC110 - polling the role
                await anyio.sleep(0.01)
        store = node._store
        assert store is not None
        delay = 0.0
        where: list[str] = []
        sync, begin_sync = store.sync, store.begin_sync

        # The quick disk does not sync at all: a real fsync on a busy machine may take
        # milliseconds by itself. A preempted loop can still make a quick one look slow, so
        # the quick phases ask for a run of inline syncs at their end, not for every one.
        def slow_sync() -> None:
            where.append("loop")
            if delay:
                time.sleep(delay)
                sync()

        def slow_begin_sync() -> Callable[[], None]:
            finish = begin_sync()

            def slow_finish() -> None:
                time.sleep(delay)
                finish()

            where.append("thread")
            return slow_finish

        store.sync = slow_sync  # type: ignore[method-assign]
        store.begin_sync = slow_begin_sync  # type: ignore[method-assign]
        for i in range(40):
            await node.propose(put_command(f"quick{i}", i))
        assert where[-5:] == ["loop"] * 5
        delay = 0.01
        where.clear()
        for i in range(20):
            await node.propose(put_command(f"slow{i}", i))
        assert where[-10:] == ["thread"] * 10 and where.count("loop") <= 10
        delay = 0.0
        where.clear()
        for i in range(40):
            await node.propose(put_command(f"quick-again{i}", i))
        assert where[-5:] == ["loop"] * 5


async def test_propose_nowait_reports_the_outcome_to_a_callback(tmp_path: Path) -> None:
    outcomes: list[tuple[Any, BaseException | None]] = []
    arrived = anyio.Event()

    def done(result: Any, error: BaseException | None) -> None:
        outcomes.append((result, error))
        arrived.set()

    async with cluster(tmp_path, ["a", "b", "c"]) as c:
        leader = await c.leader()
        await leader.propose(put_command("k", "first"))
        leader.propose_nowait(put_command("k", "second"), done)
        with anyio.fail_after(5):
            await arrived.wait()
        assert outcomes == [("first", None)]
        follower = next(n for n in c.nodes.values() if n is not leader)
        follower.propose_nowait(put_command("k", "third"), done)
        _, error = outcomes[-1]
        assert isinstance(error, NotLeader) and error.leader_id == leader.node_id
        with pytest.raises(ValueError, match="reserved prefix"):
            leader.propose_nowait(b"\x00quorus-raft-addresses\x00{}", done)
        node = leader
    node.propose_nowait(put_command("k", "late"), done)
    assert isinstance(outcomes[-1][1], ConsensusUnavailable)
    assert len(outcomes) == 3


async def test_failover_elects_a_new_leader_that_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    async with cluster(tmp_path, ["a", "b", "c"]) as c:
        leader = await c.leader()
        for i in range(20):
            await leader.propose(put_command(f"k{i}", i))
        old = leader.node_id
        await c.stop(old)
        new = await c.leader()
        assert new.node_id != old
        await new.read_barrier()
        machine = c.machines[new.node_id]
        assert all(machine.get(f"k{i}") == i for i in range(20))
        await new.propose(put_command("after", 1))
        # The old leader comes back as a follower and catches up from its own durable log.
        await c.start(old)
        await c.converge("after", 1)


async def test_restart_of_every_node_recovers_the_state(tmp_path: Path) -> None:
    async with cluster(tmp_path, ["a", "b", "c"]) as c:
        leader = await c.leader()
        for i in range(30):
            await leader.propose(put_command(f"k{i}", i))
    async with cluster(tmp_path, ["a", "b", "c"]) as again:
        leader = await again.leader()
        await leader.read_barrier()
        assert all(again.machines[leader.node_id].get(f"k{i}") == i for i in range(30))


async def test_proposals_fail_promptly_when_the_leader_steps_down(tmp_path: Path) -> None:
    async with cluster(tmp_path, ["a", "b", "c"]) as c:
        leader = await c.leader()
        await leader.propose(put_command("k", 0))
        others = [i for i in c.nodes if i != leader.node_id]
        for node_id in others:
            await c.stop(node_id)
        # No quorum: the proposal cannot commit; check-quorum makes the leader step down and
        # the proposal fails with NotLeader instead of hanging.
        with anyio.fail_after(5), pytest.raises(NotLeader):
            await leader.propose(put_command("k", 1))


async def test_leadership_transfer_and_removing_the_leader(tmp_path: Path) -> None:
    async with cluster(tmp_path, ["a", "b", "c"]) as c:
        leader = await c.leader()
        await leader.propose(put_command("k", 1))
        target = next(i for i in c.nodes if i != leader.node_id)
        await leader.transfer_leadership(target)
        new = await c.leader()
        assert new.node_id == target
        await new.propose(put_command("k", 2))
        # The leader removes itself; the remaining two elect a leader and keep serving.
        await new.remove_member(new.node_id)
        survivor = await c.leader(exclude=new.node_id)
        await survivor.propose(put_command("k", 3))
        assert set(survivor.status()["voters"]) == set(c.members) - {new.node_id}


async def test_a_new_member_catches_up_from_a_snapshot_and_votes(tmp_path: Path) -> None:
    async with cluster(tmp_path, ["a", "b", "c"], snapshot_every=50) as c:
        for i in range(200):
            await c.put(f"k{i}", "v" * 100)
        leader = await c.leader()
        assert leader.status()["snapshot_index"] >= 150
        address = f"127.0.0.1:{free_port()}"
        members = {**c.members, "d": address}
        await c.start("d", members, join=True, listen=address, snapshot_every=50)
        await leader.add_member("d", address)
        assert "d" in leader.status()["voters"]
        await c.put("last", 1)
        await c.converge("last", 1)
        assert c.machines["d"].get("k0") == "v" * 100


async def test_a_stopped_node_refuses_requests(tmp_path: Path) -> None:
    async with cluster(tmp_path, ["a"]) as c:
        node = c.nodes["a"]
        await c.leader()
    with pytest.raises(ConsensusUnavailable):
        await node.propose(put_command("k", 1))


async def test_a_node_without_a_token_does_not_start(tmp_path: Path) -> None:
    config = ConsensusConfig(node_id="a", members={"a": f"127.0.0.1:{free_port()}"},
                             data_dir=tmp_path, options={})
    with pytest.raises(Exception, match="needs a cluster token"):
        async with RaftNode(config, KeyValueStateMachine()):
            pass


class MetricRecorder:
    def __init__(self) -> None:
        self.names: set[str] = set()

    @hookimpl
    def quorus_metric(self, name: str, kind: str, value: float, labels: dict[str, str]) -> None:
        self.names.add(name)


async def test_metrics_reach_the_metrics_hook(tmp_path: Path) -> None:
    recorder = MetricRecorder()
    manager = plugin_manager()
    manager.register(recorder, name="raft-metric-recorder")
    try:
        async with cluster(tmp_path, ["a", "b", "c"]) as c:
            leader = await c.leader()
            for i in range(5):
                await leader.propose(put_command("k", i))
    finally:
        manager.unregister(recorder)
    expected = {
        "raft.election.count", "raft.election.duration_ms", "raft.leader.changes",
        "raft.vote.requests_sent", "raft.vote.requests_received", "raft.term.current",
        "raft.commit.index", "raft.apply.lag", "raft.fsync.latency_ms",
    }
    assert expected <= recorder.names, expected - recorder.names


def test_a_truncation_below_an_installed_snapshot_is_not_an_error(tmp_path: Path) -> None:
    """A follower that installs a snapshot may get, in the same Ready, a truncation of its
    old conflicting log below the snapshot's index: those entries went with the old log."""
    from quorus.core.storage import SnapshotMeta as StoredMeta
    from quorus.core.storage.file import FileLogStore
    from quorus.raft.messages import Entry, EntryKind
    from quorus.raft.ready import Ready

    store = FileLogStore(tmp_path / "store")
    store.open()
    meta = store.save_snapshot(StoredMeta(100, 3), b"state")
    store.reset(meta)
    config = ConsensusConfig(node_id="a", members={"a": "127.0.0.1:1"}, data_dir=tmp_path, options=OPTIONS)
    node = RaftNode(config, KeyValueStateMachine(), store=store)
    node._write(Ready(truncate_from=42, entries=[Entry(101, 3, EntryKind.NORMAL, b"x")]))
    store.sync()
    assert (store.first_index, store.last_index) == (101, 101)
    node._write(Ready(truncate_from=101, entries=[Entry(101, 4, EntryKind.NORMAL, b"y")]))
    assert store.term(101) == 4
    store.close()
