"""The ``standalone`` consensus backend: durable, group-committed, recovers by replay and
from snapshots, and returns each command's own result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from quorus.core.consensus import (
    ConsensusBackend,
    ConsensusConfig,
    ConsensusUnavailable,
    load_backend,
)
from quorus.core.consensus.standalone import StandaloneBackend
from quorus.core.storage import LogStore
from quorus.core.storage.file import FileLogStore

pytestmark = pytest.mark.anyio


class KeyValue:
    """A tiny deterministic state machine: ``{"op": "put"|"fail", ...}`` commands."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.applied: list[int] = []
        self.restored_at: int | None = None

    def apply(self, index: int, command: bytes) -> Any:
        self.applied.append(index)
        cmd = json.loads(command)
        if cmd["op"] == "fail":
            raise ValueError(f"refused {cmd['key']}")
        previous = self.data.get(cmd["key"])
        self.data[cmd["key"]] = cmd["value"]
        return {"index": index, "previous": previous}

    def snapshot(self) -> bytes:
        return json.dumps(self.data).encode()

    def restore(self, data: bytes, index: int) -> None:
        self.data = json.loads(data)
        self.restored_at = index


def put(key: str, value: Any) -> bytes:
    return json.dumps({"op": "put", "key": key, "value": value}).encode()


def config(tmp_path: Path, **kw: Any) -> ConsensusConfig:
    return ConsensusConfig(node_id="c1", data_dir=tmp_path / "data", **kw)


async def test_loaded_by_name_and_leads_itself(tmp_path: Path) -> None:
    sm = KeyValue()
    backend = load_backend("standalone", config(tmp_path), sm)
    assert isinstance(backend, StandaloneBackend)
    async with backend:
        assert backend.is_leader and backend.leader_id == "c1"
        result = await backend.propose(put("a", 1))
        assert result == {"index": 1, "previous": None}
        await backend.read_barrier()
        assert backend.status()["commit_index"] == 1
    assert backend.leader_id is None


async def test_each_proposal_gets_its_own_result_and_errors(tmp_path: Path) -> None:
    sm = KeyValue()
    results: dict[int, Any] = {}
    async with StandaloneBackend(config(tmp_path), sm) as backend:

        async def one(i: int) -> None:
            results[i] = await backend.propose(put(f"k{i % 5}", i))

        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(one, i)
        with pytest.raises(ValueError, match="refused x"):
            await backend.propose(json.dumps({"op": "fail", "key": "x"}).encode())
        assert (await backend.propose(put("after", 1)))["index"] == 202

    # Every proposer saw the result of the entry its own command landed in.
    by_index = {r["index"]: i for i, r in results.items()}
    assert sorted(by_index) == list(range(1, 201))
    assert sm.applied == list(range(1, 203))


async def test_group_commit_uses_fewer_fsyncs_than_proposals(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path / "data")
    async with StandaloneBackend(config(tmp_path), KeyValue(), store=store) as backend:
        before = store.syncs
        async with anyio.create_task_group() as tg:
            for i in range(300):
                tg.start_soon(backend.propose, put("k", i))
        syncs = store.syncs - before
    assert 1 <= syncs < 300 / 4, syncs


async def test_restart_replays_the_log(tmp_path: Path) -> None:
    async with StandaloneBackend(config(tmp_path), KeyValue()) as backend:
        for i in range(50):
            await backend.propose(put(f"k{i}", i))
    sm = KeyValue()
    async with StandaloneBackend(config(tmp_path), sm) as backend:
        assert sm.data == {f"k{i}": i for i in range(50)}
        assert (await backend.propose(put("k0", "new")))["index"] == 51


async def test_snapshots_compact_the_log_and_restore_exactly(tmp_path: Path) -> None:
    async with StandaloneBackend(config(tmp_path, snapshot_every=40), KeyValue()) as backend:
        for i in range(100):
            await backend.propose(put(f"k{i % 30}", i))
        assert backend.status()["snapshot_index"] >= 80
    sm = KeyValue()
    async with StandaloneBackend(config(tmp_path, snapshot_every=40), sm) as backend:
        assert sm.restored_at is not None and sm.restored_at >= 80
        assert sm.data == {f"k{i % 30}": i for i in range(100)}
        # Only the tail after the snapshot was replayed.
        assert sm.applied == list(range(sm.restored_at + 1, 101))
        assert backend.status()["applied_index"] == 100


async def test_a_stopped_backend_refuses_proposals(tmp_path: Path) -> None:
    backend = StandaloneBackend(config(tmp_path), KeyValue())
    with pytest.raises(ConsensusUnavailable):
        await backend.propose(put("a", 1))
    async with backend:
        pass
    with pytest.raises(ConsensusUnavailable):
        await backend.propose(put("a", 1))


class FailingStore(FileLogStore):
    def sync(self) -> None:
        raise OSError(5, "Input/output error")


async def test_a_failing_store_fails_proposals_and_stops(tmp_path: Path) -> None:
    store: LogStore = FailingStore(tmp_path / "data")
    backend: ConsensusBackend = StandaloneBackend(config(tmp_path), KeyValue(), store=store)
    with pytest.raises(OSError, match="Input/output"):
        # The start-up write of the hard state already fails: the node does not start.
        async with backend:
            pass


async def test_a_failing_fsync_is_never_acknowledged(tmp_path: Path) -> None:
    class FailLater(FileLogStore):
        fail = False

        def sync(self) -> None:
            if self.fail:
                raise OSError(28, "No space left on device")
            super().sync()

    store = FailLater(tmp_path / "data")
    async with StandaloneBackend(config(tmp_path), KeyValue(), store=store) as backend:
        await backend.propose(put("a", 1))
        store.fail = True
        with pytest.raises(ConsensusUnavailable, match="No space left"):
            await backend.propose(put("b", 2))
        with pytest.raises(ConsensusUnavailable):
            await backend.propose(put("c", 3))


async def test_a_command_the_state_machine_refused_does_not_stop_a_restart(tmp_path: Path) -> None:
    async with StandaloneBackend(config(tmp_path), KeyValue()) as backend:
        await backend.propose(put("a", 1))
        with pytest.raises(ValueError, match="refused"):
            await backend.propose(json.dumps({"op": "fail", "key": "x"}).encode())
        await backend.propose(put("b", 2))
    sm = KeyValue()
    async with StandaloneBackend(config(tmp_path), sm):
        assert sm.data == {"a": 1, "b": 2}
        assert sm.applied == [1, 2, 3]
