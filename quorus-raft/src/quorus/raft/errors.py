"""The exceptions the Raft core raises.

``NotLeader`` is meant to move to ``quorus.core.consensus`` (the consensus interface exports it
there); until then it lives here, derived from :class:`quorus.core.errors.QuorusError`.
"""

from __future__ import annotations

from quorus.core.consensus import MembershipRejected
from quorus.core.errors import QuorusError


class RaftError(QuorusError):
    """Base of every error the Raft core raises on purpose."""


class NotLeader(RaftError):
    """This node cannot accept the request because it is not the leader.

    ``leader_hint`` is the node believed to lead (``None`` when no leader is known): send the
    request there. A proposal that failed this way at :meth:`RaftCore.propose` was never
    appended to any log.
    """

    def __init__(self, leader_hint: str | None, message: str | None = None) -> None:
        self.leader_hint = leader_hint
        if message is None:
            where = f"try {leader_hint!r}" if leader_hint is not None else "no leader is known"
            message = f"this node is not the Raft leader: {where}"
        super().__init__(message)


class LeadershipTransferInProgress(NotLeader):
    """The leader is handing leadership to ``leader_hint`` and refuses new proposals meanwhile."""

    def __init__(self, target: str) -> None:
        super().__init__(
            target, f"leadership is being transferred to {target!r}: retry there shortly"
        )


class MembershipChangeRejected(RaftError, MembershipRejected):
    """A membership change cannot be made now (or ever, as asked); the message says why."""


class MessageDecodeError(RaftError):
    """A Raft message received from the network is malformed: unknown type, bad fields."""


class LeadershipTransferRejected(RaftError, MembershipRejected):
    """A leadership transfer cannot be made to the node asked (not a voter, unknown)."""
