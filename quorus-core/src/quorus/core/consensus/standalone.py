"""``standalone``: one durable node, the embedded default consensus backend.

Every command is appended to the store's log and made durable before it is applied and
acknowledged, exactly as a one-member Raft cluster would; so a controller that starts with
``standalone`` keeps its state across restarts and can later move to ``raft`` with the same
state machine. Proposals arriving while an fsync is under way are written together and made
durable by the next single fsync (group commit).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup
from quorus.core.consensus import (
    ConsensusBackend,
    ConsensusConfig,
    ConsensusUnavailable,
    StateMachine,
)
from quorus.core.hooks import plugin_manager
from quorus.core.storage import (
    ENTRY_NORMAL,
    HardState,
    LogEntry,
    LogStore,
    SnapshotMeta,
    load_store,
)

log = logging.getLogger(__name__)

#: At most this many commands go into one batch (one write, one fsync).
MAX_BATCH = 4096


@dataclass(slots=True)
class _Proposal:
    command: bytes
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    error: BaseException | None = None


class StandaloneBackend(ConsensusBackend):
    """A single durable node; see the module docstring."""

    def __init__(
        self,
        config: ConsensusConfig,
        state_machine: StateMachine,
        *,
        store: LogStore | None = None,
    ) -> None:
        self.config = config
        self._sm = state_machine
        # Looked up once: metrics are emitted on every batch.
        self._hook = plugin_manager().hook
        self._store = store
        self._queue: list[_Proposal] = []
        self._wakeup = anyio.Event()
        self._task_group: TaskGroup | None = None
        self._closed = True
        self._applied = 0
        self._term = 1
        self._snapshot_index = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._store is None:
            self._store = load_store(self.config.storage, self.config.data_dir)
        store = self._store
        try:
            await self._recover(store)
        except BaseException:
            store.close()
            raise
        self._closed = False
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._commit_loop)
        log.info("standalone consensus started at index %d", self._applied)
        return self

    async def _recover(self, store: LogStore) -> None:
        recovered = await anyio.to_thread.run_sync(store.open)
        for repair in recovered.repairs:
            log.warning("storage repaired at start-up: %s", repair)
        if recovered.snapshot is not None:
            data = await anyio.to_thread.run_sync(store.read_snapshot)
            self._sm.restore(data, recovered.snapshot.index)
            self._applied = self._snapshot_index = recovered.snapshot.index
        # On one node every durable entry is committed: replay them all.
        self._term = max(recovered.hard_state.term, 1)
        for entry in recovered.entries:
            try:
                self._apply_entry(entry)
            except Exception as exc:
                # As in the commit loop: the entry counts as applied; its proposer saw the error.
                log.warning("entry %d failed to apply on replay: %s", entry.index, exc)
        if recovered.hard_state.term != self._term or recovered.hard_state.vote != self.node_id:
            store.set_hard_state(HardState(self._term, self.node_id, self._applied))
            await anyio.to_thread.run_sync(store.sync)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        self._wakeup.set()
        task_group, self._task_group = self._task_group, None
        if task_group is not None:
            # The loop finishes the batch in flight and fails the rest.
            await task_group.__aexit__(exc_type, exc, tb)
        for proposal in self._queue:
            proposal.error = ConsensusUnavailable("the consensus backend stopped")
            proposal.done.set()
        self._queue.clear()
        if self._store is not None:
            self._store.close()

    # -- proposals --------------------------------------------------------------------------------

    async def propose(self, command: bytes) -> Any:
        if self._closed:
            raise ConsensusUnavailable("the consensus backend is not running")
        proposal = _Proposal(bytes(command))
        self._queue.append(proposal)
        self._wakeup.set()
        await proposal.done.wait()
        if proposal.error is not None:
            raise proposal.error
        return proposal.result

    async def read_barrier(self) -> None:
        # Proposals are applied before they are acknowledged and nothing is committed
        # elsewhere, so the local state already includes every acknowledged command.
        if self._closed:
            raise ConsensusUnavailable("the consensus backend is not running")

    async def _commit_loop(self) -> None:
        assert self._store is not None
        store = self._store
        while not self._closed:
            if not self._queue:
                await self._wakeup.wait()
                self._wakeup = anyio.Event()
                continue
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            first = store.last_index + 1
            entries = [
                LogEntry(first + i, self._term, ENTRY_NORMAL, p.command) for i, p in enumerate(batch)
            ]
            started = time.perf_counter()
            try:
                store.append(entries)
                # The commit index travels with the batch's own fsync.
                store.set_hard_state(HardState(self._term, self.node_id, entries[-1].index))
                await anyio.to_thread.run_sync(store.sync, abandon_on_cancel=False)
            except Exception as exc:
                # A store that cannot write stops the node: acknowledging anything after a
                # failed fsync could lose it.
                log.error("standalone consensus stopped: the store failed: %s", exc)
                self._closed = True
                for proposal in [*batch, *self._queue]:
                    proposal.error = ConsensusUnavailable(f"the log store failed: {exc}")
                    proposal.done.set()
                self._queue.clear()
                return
            self._metric("consensus.fsync_ms", "histogram", (time.perf_counter() - started) * 1e3)
            self._metric("consensus.batch_size", "histogram", len(batch))
            for entry, proposal in zip(entries, batch, strict=True):
                try:
                    proposal.result = self._apply_entry(entry)
                except Exception as exc:
                    proposal.error = exc
                proposal.done.set()
            self._metric("consensus.commit_index", "gauge", self._applied)
            if self._applied - self._snapshot_index >= self.config.snapshot_every:
                await self._take_snapshot()

    def _apply_entry(self, entry: LogEntry) -> Any:
        self._applied = entry.index
        if entry.kind != ENTRY_NORMAL:
            return None
        return self._sm.apply(entry.index, entry.data)

    async def _take_snapshot(self) -> None:
        """Snapshot the state machine and drop the log it covers."""
        assert self._store is not None
        store = self._store
        index = self._applied
        term = store.term(index) or self._term
        data = self._sm.snapshot()

        def write() -> None:
            store.save_snapshot(SnapshotMeta(index, term), data)
            store.compact(index)

        await anyio.to_thread.run_sync(write, abandon_on_cancel=False)
        self._snapshot_index = index
        log.info("snapshot at index %d (%d bytes); log compacted", index, len(data))

    # -- status -------------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.config.node_id

    @property
    def leader_id(self) -> str | None:
        return None if self._closed else self.node_id

    def status(self) -> dict[str, Any]:
        return {
            "backend": "standalone",
            "node_id": self.node_id,
            "role": "stopped" if self._closed else "leader",
            "leader": self.leader_id,
            "term": self._term,
            "commit_index": self._applied,
            "applied_index": self._applied,
            "snapshot_index": self._snapshot_index,
            "members": {self.node_id: "local"},
        }

    def _metric(self, name: str, kind: str, value: float) -> None:
        if math.isfinite(value):
            self._hook.quorus_metric(
                name=name, kind=kind, value=value, labels={"node": self.node_id}
            )
