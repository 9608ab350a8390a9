"""The consensus interface: how the controller replicates its state machine.

A :class:`ConsensusBackend` takes opaque commands, orders them in a durable log (replicated by
``raft``; on one node by the built-in ``standalone``), applies them to the controller's
:class:`StateMachine` in the same order on every node, and returns each command's result to
whoever proposed it. Backends are plugins in the ``quorus.consensus`` entry-point group: the
entry point is a factory called as ``factory(config, state_machine)``.

Guarantees every backend gives:

- :meth:`ConsensusBackend.propose` returns the state machine's result for *that* command once
  it is applied on this node, or raises — it never completes with another entry's result.
  :class:`NotLeader` (with a hint where the leader is) comes promptly when this node is not, or
  stops being, the leader; the command may or may not have been committed in that case.
- :meth:`ConsensusBackend.read_barrier` returns once every command committed before the call
  is applied on this node, so reading the state machine afterwards is linearizable.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from quorus.core.errors import QuorusError, UnsupportedOperationError


class ConsensusError(QuorusError):
    """A command could not be replicated."""


class MembershipRejected(ConsensusError):
    """A membership change or leadership transfer the quorum refuses as asked (an unknown
    node, one already a member, another change not yet committed); the message says why.
    Nothing was changed."""


class NotLeader(ConsensusError):
    """This node is not the leader. ``leader_id`` and ``leader_address`` say where the leader
    is when this node knows (``None`` during an election).

    ``maybe_committed`` is true when the command had already been appended to the log before
    this node lost leadership: it may still commit under the next leader, so a caller must not
    assume it had no effect (retry only what is idempotent)."""

    def __init__(
        self,
        leader_id: str | None = None,
        leader_address: str | None = None,
        *,
        maybe_committed: bool = False,
    ) -> None:
        where = f"; the leader is {leader_id} at {leader_address}" if leader_id else ""
        maybe = " (the command may still commit)" if maybe_committed else ""
        super().__init__(f"this node is not the leader{where}{maybe}")
        self.leader_id = leader_id
        self.leader_address = leader_address
        self.maybe_committed = maybe_committed


class ConsensusUnavailable(ConsensusError):
    """The backend is stopped, or cannot reach a quorum in time."""


class StateMachine(Protocol):
    """The deterministic state machine a backend replicates.

    ``apply`` runs in the backend's event loop, in log order, once per committed command; it
    must give the same result and state on every node, so it may not read clocks, random
    numbers or the environment — anything like that travels inside the command. An exception
    it raises is the proposer's result (re-raised there); the entry still counts as applied.
    """

    def apply(self, index: int, command: bytes) -> Any:
        """Apply the command at log ``index`` and return its result."""

    def snapshot(self) -> bytes:
        """The whole state as of the last applied index."""

    def restore(self, data: bytes, index: int) -> None:
        """Replace the whole state with a snapshot taken at log ``index``."""


class SnapshotView(Protocol):
    """Optional, for state machines with a large state: :meth:`snapshot_view` is called in the
    event loop and must be cheap (take an immutable view: a shallow copy of a dict of immutable
    values, say); the function it returns runs in a worker thread and yields the snapshot's
    bytes in pieces, equal to what :meth:`StateMachine.snapshot` would return. Backends use it
    when present so that snapshotting a large state does not stall the loop."""

    def snapshot_view(self) -> Callable[[], Iterable[bytes]]:
        """A function producing the current state's snapshot bytes, safe to run elsewhere."""


@dataclass(frozen=True)
class ConsensusConfig:
    """Where and how a backend runs.

    - ``node_id``: this node's name, unique in the cluster.
    - ``members``: node id → ``host:port`` of every voting member at bootstrap (this node
      included); ignored by ``standalone``.
    - ``data_dir``: where the store keeps its files (``None`` with the ``memory`` store).
    - ``storage``: the ``quorus.storage`` store to use.
    - ``snapshot_every``: take a snapshot and compact the log after this many applied entries.
    - ``options``: backend-specific settings (timeouts, TLS, ...).
    """

    node_id: str = "node-1"
    members: Mapping[str, str] = field(default_factory=dict)
    data_dir: Path | None = None
    storage: str = "file"
    snapshot_every: int = 10_000
    options: Mapping[str, Any] = field(default_factory=dict)


class ConsensusBackend(abc.ABC):
    """A running replica of the state machine; use as ``async with backend:``."""

    config: ConsensusConfig

    @abc.abstractmethod
    async def __aenter__(self) -> Self:
        """Recover from storage and start serving (background tasks run until exit)."""

    @abc.abstractmethod
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop: pending proposals fail with :class:`ConsensusUnavailable`; files close."""

    @abc.abstractmethod
    async def propose(self, command: bytes) -> Any:
        """Replicate ``command`` and return the state machine's result (see the module doc).

        Raises :class:`NotLeader`, :class:`ConsensusUnavailable`, or what ``apply`` raised.
        """

    @abc.abstractmethod
    async def read_barrier(self) -> None:
        """Wait until a read of the local state machine is linearizable.

        Raises :class:`NotLeader` on a node that cannot confirm it serves current state.
        """

    @property
    @abc.abstractmethod
    def node_id(self) -> str:
        """This node's id."""

    @property
    @abc.abstractmethod
    def leader_id(self) -> str | None:
        """The current leader's id, if known."""

    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.node_id

    @abc.abstractmethod
    def status(self) -> dict[str, Any]:
        """A JSON-able summary: role, term, commit and applied index, members, leader."""

    async def add_member(self, node_id: str, address: str, *, voter: bool = True) -> None:
        """Add a node (a learner first; it votes once caught up when ``voter``)."""
        raise UnsupportedOperationError(f"{type(self).__name__} has no membership changes")

    async def remove_member(self, node_id: str) -> None:
        """Remove a node, the leader included."""
        raise UnsupportedOperationError(f"{type(self).__name__} has no membership changes")

    async def transfer_leadership(self, node_id: str) -> None:
        """Hand leadership to ``node_id``."""
        raise UnsupportedOperationError(f"{type(self).__name__} has no leadership transfer")


def load_backend(name: str, config: ConsensusConfig, state_machine: StateMachine) -> ConsensusBackend:
    """Create the backend registered as ``name`` in ``quorus.consensus``."""
    from quorus.core.plugins import CONSENSUS, registry

    factory = registry().load(CONSENSUS, name)
    backend = factory(config, state_machine)
    if not isinstance(backend, ConsensusBackend):
        raise ConsensusError(f"consensus plugin {name!r} did not return a ConsensusBackend")
    return backend


__all__ = [
    "ConsensusBackend",
    "ConsensusConfig",
    "ConsensusError",
    "ConsensusUnavailable",
    "MembershipRejected",
    "NotLeader",
    "SnapshotView",
    "StateMachine",
    "load_backend",
]
