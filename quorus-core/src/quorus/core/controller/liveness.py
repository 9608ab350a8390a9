"""Agent liveness: the leader's soft state about heartbeats, and what to do about silence.

Heartbeats are not replicated: the leader records when each agent was last heard from, and
proposes a command only when something changes — :class:`ExpireAgent` for an agent that
missed ``missed`` heartbeat intervals, :class:`AgentStateChanged` for an unhealthy agent that
is heard from again, :class:`DeregisterAgent` for a draining agent past its deadline. Every
time is passed in by the caller; nothing here reads a clock.

A new leader knows nothing of the heartbeats its predecessor saw, so :meth:`Liveness.start_leading`
gives every agent a full timeout from the election before any can be declared dead.
"""

from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import dataclass

from quorus.core.controller.commands import (
    AgentStateChanged,
    Command,
    DeregisterAgent,
    ExpireAgent,
)
from quorus.core.controller.model import AgentState
from quorus.core.controller.scheduler import AgentCapacity
from quorus.core.controller.state import ControllerState

#: The system design's heartbeat interval, in seconds, and how many may be missed.
DEFAULT_INTERVAL = 30.0
DEFAULT_MISSED = 3

# Capacities are immutable: the common ones are shared rather than built each round.
_CAPACITIES: dict[int | None, AgentCapacity] = {
    n: AgentCapacity(True, n) for n in (None, *range(65))}

_WATCHED = frozenset({AgentState.ACTIVE, AgentState.IDLE, AgentState.WORKING,
                      AgentState.DRAINING})


@dataclass(slots=True)
class _Heard:
    at: float
    sequence: int | None = None
    free_slots: int | None = None
    connected: bool = True


class Liveness:
    """Last heartbeat per agent and the deadlines that follow from it (see the module doc).

    ``unhealthy_deregister_after``: deregister an agent that stays unhealthy and silent this
    long (``None``: keep it, so it can come back).
    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        missed: int = DEFAULT_MISSED,
        *,
        unhealthy_deregister_after: float | None = None,
    ) -> None:
        if interval <= 0 or missed < 1:
            raise ValueError("the heartbeat interval must be positive and missed at least 1")
        self.interval = interval
        self.missed = missed
        self.unhealthy_deregister_after = unhealthy_deregister_after
        self._heard: dict[str, _Heard] = {}
        self._leading_since: float | None = None

    @property
    def timeout(self) -> float:
        """Silence after which an agent is declared dead: ``missed`` intervals."""
        return self.interval * self.missed

    def start_leading(self, now: float) -> None:
        """This node just became leader at ``now``: forget what an earlier term saw and give
        every agent a full timeout from now."""
        self._heard.clear()
        self._leading_since = now

    def stop_leading(self) -> None:
        self._heard.clear()
        self._leading_since = None

    @property
    def grace_until(self) -> float | None:
        """No agent is declared dead before this time (``None`` when not leading)."""
        if self._leading_since is None:
            return None
        return self._leading_since + self.timeout

    # -- what agents tell us --------------------------------------------------------------------

    def heartbeat(
        self,
        agent_id: str,
        now: float,
        *,
        sequence: int | None = None,
        free_slots: int | None = None,
    ) -> bool:
        """Record a heartbeat (or a registration, or any frame from the agent). Returns
        ``False`` and ignores it when its ``sequence`` is older than one already seen."""
        heard = self._heard.get(agent_id)
        if (heard is not None and sequence is not None and heard.sequence is not None
                and sequence < heard.sequence):
            return False
        if heard is None:
            self._heard[agent_id] = _Heard(now, sequence, free_slots)
        else:
            heard.at = max(heard.at, now)
            heard.sequence = sequence if sequence is not None else heard.sequence
            heard.free_slots = free_slots
            heard.connected = True
        return True

    def disconnected(self, agent_id: str) -> None:
        """The agent's connection closed: no jobs are pushed to it, but it is declared dead
        only when its heartbeat timeout passes (it may reconnect first)."""
        heard = self._heard.get(agent_id)
        if heard is not None:
            heard.connected = False

    def forget(self, agent_id: str) -> None:
        self._heard.pop(agent_id, None)

    def last_heard(self, agent_id: str) -> float | None:
        heard = self._heard.get(agent_id)
        return heard.at if heard is not None else None

    # -- what follows -------------------------------------------------------------------------

    def deadline(self, agent_id: str) -> float | None:
        """When the agent is declared dead unless heard from (``None`` when not leading)."""
        if self._leading_since is None:
            return None
        heard = self._heard.get(agent_id)
        since = self._leading_since if heard is None else max(heard.at, self._leading_since)
        return since + self.timeout

    def is_live(self, agent_id: str, now: float) -> bool:
        """Heard from within the timeout (and this node leads)."""
        deadline = self.deadline(agent_id)
        return deadline is not None and now < deadline and agent_id in self._heard

    def capacity(self, now: float, among: Container[str] | None = None
                 ) -> dict[str, AgentCapacity]:
        """The scheduler's soft state: connected, live agents (only those ``among``, when
        given) and their reported free slots."""
        if self._leading_since is None:
            return {}
        # Live: heard from within the timeout, or still in the grace after the election.
        heard_after = now - self.timeout
        if self._leading_since > heard_after:
            heard_after = -math.inf
        shared = _CAPACITIES
        return {
            agent_id: shared.get(heard.free_slots) or AgentCapacity(True, heard.free_slots)
            for agent_id, heard in self._heard.items()
            if heard.connected and heard.at > heard_after
            and (among is None or agent_id in among)
        }

    def review(self, state: ControllerState, now: float) -> list[Command]:
        """The commands the leader should propose at ``now``, in agent id order."""
        if self._leading_since is None:
            return []
        commands: list[Command] = []
        for agent_id in sorted(state.agents):
            agent = state.agents[agent_id]
            deadline = self.deadline(agent_id)
            assert deadline is not None
            heard = self._heard.get(agent_id)
            silent = now >= deadline
            if agent.state is AgentState.DRAINING and agent.drain_deadline is not None and (
                now >= agent.drain_deadline
            ):
                commands.append(DeregisterAgent(agent_id, now, "drain deadline passed"))
            elif agent.state in _WATCHED and silent:
                commands.append(ExpireAgent(agent_id, now, heard.at if heard else None))
            elif agent.state is AgentState.UNHEALTHY:
                if heard is not None and heard.at > agent.updated_at and not silent:
                    commands.append(AgentStateChanged(
                        agent_id, AgentState.ACTIVE, now, "heartbeats resumed"
                    ))
                elif silent and state.load(agent_id):
                    # Reported itself unhealthy, then went silent with jobs: move them.
                    commands.append(ExpireAgent(agent_id, now, heard.at if heard else None))
                elif (self.unhealthy_deregister_after is not None
                      and now >= max(agent.updated_at, deadline - self.timeout)
                      + self.unhealthy_deregister_after):
                    commands.append(DeregisterAgent(agent_id, now, "unhealthy for too long"))
        return commands


__all__ = ["DEFAULT_INTERVAL", "DEFAULT_MISSED", "Liveness"]
