"""Cluster membership: voters and learners, quorums, and one-at-a-time changes.

Changes are made one server at a time (Ongaro's single-server changes): a new configuration
takes effect on a node as soon as its entry is appended to that node's log (not when it
commits), and the leader refuses a second change until the first has committed. Because any two
configurations that differ by one voter share a majority, no two leaders can be elected in one
term. The leader also refuses a change until it has committed an entry of its own term, which
closes the known gap in single-server changes across leader changes.

A voter is added in two steps: :class:`ConfChange` ``ADD_VOTER`` for a node outside the
configuration adds it as a learner marked for promotion; once it has caught up with the leader's
commit index the leader itself proposes the change that makes it a voter. A learner receives
the log but neither votes nor counts in any quorum.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import msgpack
from quorus.raft.errors import MembershipChangeRejected


class ChangeKind(enum.IntEnum):
    """What a :class:`ConfChange` does."""

    ADD_VOTER = 0
    ADD_LEARNER = 1
    REMOVE = 2


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One membership change: add ``node`` as a voter or a learner, or remove it."""

    kind: ChangeKind
    node: str


@dataclass(frozen=True, slots=True)
class Configuration:
    """Who votes and who only listens. ``promoting`` lists learners to make voters when caught up."""

    voters: frozenset[str]
    learners: frozenset[str] = frozenset()
    promoting: frozenset[str] = frozenset()

    @property
    def members(self) -> frozenset[str]:
        """Every node that receives the log: voters and learners."""
        return self.voters | self.learners

    @property
    def quorum(self) -> int:
        """How many voters make a majority: floor(n/2)+1, right for even sizes too."""
        return len(self.voters) // 2 + 1

    def committed_index(self, match: Mapping[str, int]) -> int:
        """The highest index stored by a majority of voters, given each voter's match index."""
        if not self.voters:
            return 0
        indexes = sorted((match.get(v, 0) for v in self.voters), reverse=True)
        return indexes[self.quorum - 1]

    def has_quorum(self, nodes: Iterable[str]) -> bool:
        """Whether ``nodes`` include a majority of the voters."""
        return len(self.voters.intersection(nodes)) >= self.quorum

    def apply(self, change: ConfChange) -> Configuration:
        """The configuration after ``change``; raises :class:`MembershipChangeRejected`."""
        node = change.node
        if not node:
            raise MembershipChangeRejected("a membership change needs a node id")
        if change.kind is ChangeKind.ADD_VOTER:
            if node in self.voters:
                raise MembershipChangeRejected(f"{node!r} is already a voter")
            if node in self.learners:
                return Configuration(
                    self.voters | {node}, self.learners - {node}, self.promoting - {node}
                )
            return Configuration(self.voters, self.learners | {node}, self.promoting | {node})
        if change.kind is ChangeKind.ADD_LEARNER:
            if node in self.members:
                raise MembershipChangeRejected(f"{node!r} is already a member")
            return Configuration(self.voters, self.learners | {node}, self.promoting)
        if node not in self.members:
            raise MembershipChangeRejected(f"{node!r} is not a member")
        if self.voters == {node}:
            raise MembershipChangeRejected(f"cannot remove {node!r}: it is the last voter")
        return Configuration(self.voters - {node}, self.learners - {node}, self.promoting - {node})

    def to_wire(self) -> list[list[str]]:
        """A msgpack-friendly form: three sorted lists."""
        return [sorted(self.voters), sorted(self.learners), sorted(self.promoting)]

    @classmethod
    def from_wire(cls, obj: object) -> Configuration:
        """Inverse of :meth:`to_wire`; raises ``ValueError`` on anything else."""
        if not isinstance(obj, list | tuple) or len(obj) != 3:
            raise ValueError("a configuration is three lists of node ids")
        sets: list[frozenset[str]] = []
        for part in obj:
            if not isinstance(part, list | tuple) or not all(
                isinstance(n, str) and n for n in part
            ):
                raise ValueError("a configuration lists node ids as non-empty strings")
            sets.append(frozenset(part))
        voters, learners, promoting = sets
        if voters & learners or not promoting <= learners:
            raise ValueError("a node is both voter and learner, or promotes without learning")
        return cls(voters, learners, promoting)

    def encode(self) -> bytes:
        """The bytes stored in a configuration entry."""
        return bytes(msgpack.packb(self.to_wire()))

    @classmethod
    def decode(cls, data: bytes) -> Configuration:
        """Inverse of :meth:`encode`; raises ``ValueError`` on corrupt data."""
        try:
            obj = msgpack.unpackb(data)
        except Exception as exc:
            raise ValueError(f"configuration entry is not msgpack: {exc}") from exc
        return cls.from_wire(obj)


EMPTY = Configuration(frozenset())
