"""Group commit on the controller: the commands proposed at about the same time — by many
agents' links (attempts started and finished), the scheduler (a round's assignments) and
REST clients (submissions) — go to consensus together, as one
:class:`~quorus.core.controller.commands.Batch` entry, instead of one log entry each.

One task, :meth:`GroupCommit.run`, takes everything waiting and proposes it as one batch; what
arrives meanwhile waits for the next, so under load the batches grow and the number of
consensus writes per command falls. Up to ``depth`` batches are in flight at once (the
consensus layer pipelines them), so a slow commit does not hold everything behind it. The
commands of one batch are applied in the order they were handed in, and a caller's
:meth:`~GroupCommit.propose_all` goes in one batch when it fits; commands of concurrent batches
may be applied in either order (a caller that needs one command applied before another waits
for the first, as the agent link does for an attempt's start and its result). A state
module's command is proposed alone (a batch carries built-in commands only); a lone command is
proposed as itself. Errors of the backend (not the leader, no quorum) reach every proposer of
the batch, as they would have reached each alone.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
from anyio.abc import TaskStatus
from quorus.core.consensus import ConsensusUnavailable
from quorus.core.controller.commands import BUILTIN_COMMANDS, MAX_BATCH, Command, encode_batch
from quorus.core.controller.probes import Histogram

#: The most commands and encoded bytes in one batch: enough to make a consensus write cheap per
#: command, small enough that applying one batch (on every node, in its event loop) stays
#: short.
MAX_COMMANDS = 128
MAX_BATCH_BYTES = 128 * 1024
#: Batches in flight at once.
DEPTH = 4


class _Group:
    """Proposals handed in together; ``done`` is set once every one has its outcome."""

    __slots__ = ("done", "left")

    def __init__(self, size: int) -> None:
        self.left = size
        self.done = anyio.Event()


class _Ticket:
    """One command waiting for its outcome: a result or an error."""

    __slots__ = ("command", "data", "error", "group", "handed_in", "result", "settled", "then",
                 "withdrawn")

    def __init__(self, command: Command, group: _Group | None,
                 then: Callable[[Any], None] | None = None) -> None:
        self.command = command
        self.data = command.encode()
        self.handed_in = time.perf_counter()
        self.group = group
        self.then = then
        self.result: Any = None
        self.error: BaseException | None = None
        self.settled = False
        self.withdrawn = False

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        if self.settled:
            return
        self.settled = True
        self.result = result
        self.error = error
        if self.then is not None:
            self.then(error if error is not None else result)
        group = self.group
        if group is not None:
            group.left -= 1
            if group.left == 0:
                group.done.set()


class GroupCommit:
    """See the module docstring. ``propose`` is the backend's (bytes in, the state machine's
    result out). Until :meth:`run` runs, commands are proposed one by one, directly."""

    def __init__(self, propose: Callable[[bytes], Awaitable[Any]], *,
                 max_commands: int = MAX_COMMANDS, max_bytes: int = MAX_BATCH_BYTES,
                 depth: int = DEPTH) -> None:
        if not 1 <= max_commands <= MAX_BATCH:
            raise ValueError(f"max_commands must be 1 to {MAX_BATCH}")
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._propose = propose
        self.max_commands = max_commands
        self.max_bytes = max_bytes
        self.depth = depth
        self._in_flight = 0
        self._queue: deque[_Ticket] = deque()
        self._wake = anyio.Event()
        self.running = False
        #: Consensus proposals made and commands they carried (for measurements and tests).
        self.proposals = 0
        self.commands = 0
        #: How long commands waited to be proposed (a sign of ``depth`` batches in flight),
        #: and how long each proposal took to be committed and applied here.
        self.waited = Histogram()
        self.committed = Histogram()

    async def propose(self, command: Command) -> Any:
        """Propose ``command``; its result, or the backend's error."""
        if not self.running:
            self.proposals += 1
            self.commands += 1
            return await self._propose(command.encode())
        (outcome,) = await self.propose_all((command,))
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def propose_all(self, commands: Sequence[Command]) -> list[Any]:
        """Propose ``commands`` in order; each one's result, or the error that stopped it
        (an exception instance in its place in the list)."""
        if not commands:
            return []
        if not self.running:
            outcomes: list[Any] = []
            for command in commands:
                try:
                    outcomes.append(await self.propose(command))
                except Exception as exc:
                    outcomes.append(exc)
            return outcomes
        group = _Group(len(commands))
        tickets = [_Ticket(command, group) for command in commands]
        self._queue.extend(tickets)
        self._wake.set()
        try:
            await group.done.wait()
        except BaseException:
            # Cancelled while waiting: what was not taken yet is not proposed at all.
            for ticket in tickets:
                ticket.withdrawn = True
            raise
        return [t.error if t.error is not None else t.result for t in tickets]

    def propose_soon(self, command: Command, then: Callable[[Any], None]) -> None:
        """Hand in ``command`` without waiting: ``then`` gets its result or error (called by
        the committing task; it must not block). Needs :meth:`run` running."""
        if not self.running:
            raise RuntimeError("propose_soon needs the group commit running")
        self._queue.append(_Ticket(command, None, then))
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Propose what is handed in, batch after batch, until cancelled."""
        self.running = True
        task_status.started()
        try:
            async with anyio.create_task_group() as tg:
                while True:
                    if not self._queue or self._in_flight >= self.depth:
                        await self._wake.wait()
                        self._wake = anyio.Event()
                        continue
                    batch = self._take()
                    if batch:
                        self._in_flight += 1
                        tg.start_soon(self._commit, batch)
        finally:
            self.running = False
            stopped = ConsensusUnavailable("the controller is stopping")
            while self._queue:
                self._queue.popleft().settle(error=stopped)

    def _take(self) -> list[_Ticket]:
        """The next batch: built-in commands in order, within the limits; a state module's
        command alone."""
        batch: list[_Ticket] = []
        size = 0
        queue = self._queue
        while queue and len(batch) < self.max_commands:
            ticket = queue[0]
            if ticket.withdrawn:  # its proposer was cancelled: nobody waits for it
                queue.popleft()
                continue
            alone = type(ticket.command) not in BUILTIN_COMMANDS
            if batch and (alone or size + len(ticket.data) > self.max_bytes):
                break
            queue.popleft()
            batch.append(ticket)
            size += len(ticket.data)
            if alone:
                break
        return batch

    async def _commit(self, batch: list[_Ticket]) -> None:
        try:
            await self._commit_batch(batch)
        finally:
            self._in_flight -= 1
            self._wake.set()

    async def _commit_batch(self, batch: list[_Ticket]) -> None:
        data = batch[0].data if len(batch) == 1 else encode_batch([t.data for t in batch])
        self.proposals += 1
        self.commands += len(batch)
        proposed = time.perf_counter()
        waited = self.waited
        for ticket in batch:
            waited.observe(proposed - ticket.handed_in)
        try:
            result = await self._propose(data)
            self.committed.observe(time.perf_counter() - proposed)
        except Exception as exc:
            for ticket in batch:
                ticket.settle(error=exc)
            return
        except BaseException:
            stopped = ConsensusUnavailable("the controller is stopping")
            for ticket in batch:
                ticket.settle(error=stopped)
            raise
        if len(batch) == 1:
            batch[0].settle(result)
            return
        results = getattr(result, "value", None)
        if not isinstance(results, tuple) or len(results) != len(batch):
            # Not a batch's result (it cannot happen with the controller's state machine).
            error = ConsensusUnavailable(f"a batch of {len(batch)} commands was answered "
                                         f"with {type(result).__name__}")
            for ticket in batch:
                ticket.settle(error=error)
            return
        for ticket, outcome in zip(batch, results, strict=True):
            ticket.settle(outcome)


__all__ = ["DEPTH", "MAX_BATCH_BYTES", "MAX_COMMANDS", "GroupCommit"]
