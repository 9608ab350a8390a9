"""The rules of the agent commands: register (and re-register), state changes, drain,
deregister and expiry. Each handler checks the command against the state and returns
:class:`Applied` with what it changed, or a typed :class:`Rejected` without changing anything.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from quorus.core.controller.change import Change, handles
from quorus.core.controller.commands import (
    AgentStateChanged,
    DeregisterAgent,
    DrainAgent,
    ExpireAgent,
    RegisterAgent,
)
from quorus.core.controller.model import AgentRecord, AgentState, AttemptOutcome
from quorus.core.controller.results import AbortOrder, RejectCode, Result

if TYPE_CHECKING:
    from quorus.core.controller.state import ControllerState


@handles(RegisterAgent)
def _register(state: ControllerState, index: int, cmd: RegisterAgent) -> Result:
    change = Change(state, index, cmd)
    old = state.agent(cmd.agent_id)
    fresh = old is None or old.state is AgentState.DEREGISTERED
    held = {(ref.job_id, ref.attempt) for ref in cmd.holding}
    # Attempts the agent holds that are no longer its to run: moved, finished or unknown.
    for ref in sorted(cmd.holding, key=lambda r: (r.job_id, r.attempt)):
        job = state.job(ref.job_id)
        if (job is None or not job.state.on_agent or job.agent_id != cmd.agent_id
                or job.attempt != ref.attempt):
            change.abort.append(AbortOrder(cmd.agent_id, ref.job_id, ref.attempt))
    # Jobs assigned to it that it no longer knows of (it restarted): run them elsewhere.
    for job in state.jobs_on_agent(cmd.agent_id):
        if (job.id, job.attempt) not in held:
            change.take_back(job, AttemptOutcome.ABORTED, cmd.at,
                             f"agent {cmd.agent_id} re-registered without it")
    if fresh or old is None:
        new_state = AgentState.ACTIVE
    elif old.state is AgentState.DRAINING:
        new_state = AgentState.DRAINING
    else:
        new_state = AgentState.WORKING if state.load(cmd.agent_id) else AgentState.ACTIVE
    change.agent(AgentRecord(
        id=cmd.agent_id, hostname=cmd.hostname, version=cmd.version,
        capabilities=cmd.capabilities, resources=cmd.resources, location=cmd.location,
        labels=dict(cmd.labels), state=new_state,
        state_reason="registered" if fresh else "re-registered",
        registered_at=cmd.at if old is None else old.registered_at,
        updated_at=cmd.at,
        registrations=1 if old is None else old.registrations + 1,
        drain_deadline=old.drain_deadline if old and new_state is AgentState.DRAINING else None,
        tenant=cmd.tenant, namespace=cmd.namespace,
    ))
    if new_state is AgentState.DRAINING:
        change.settle_agent(cmd.agent_id, cmd.at)  # nothing left to finish: deregistered
    return change.result()


_MANUAL_TARGETS = {AgentState.ACTIVE, AgentState.IDLE, AgentState.WORKING, AgentState.UNHEALTHY}


@handles(AgentStateChanged)
def _state_changed(state: ControllerState, index: int, cmd: AgentStateChanged) -> Result:
    change = Change(state, index, cmd)
    agent = state.agent(cmd.agent_id)
    if agent is None:
        return change.reject(RejectCode.UNKNOWN_AGENT, f"no agent {cmd.agent_id!r}")
    if cmd.state not in _MANUAL_TARGETS:
        return change.reject(
            RejectCode.INVALID_TRANSITION,
            f"an agent becomes {cmd.state} through its own command, not a state change",
        )
    if agent.state in (AgentState.DRAINING, AgentState.DEREGISTERED):
        return change.reject(
            RejectCode.INVALID_TRANSITION,
            f"agent {cmd.agent_id} is {agent.state}: it cannot become {cmd.state}",
        )
    target = cmd.state
    if target.schedulable:
        # Working or idle follows from the jobs the state holds, whatever the report said.
        load = state.load(cmd.agent_id)
        target = AgentState.WORKING if load else (
            AgentState.IDLE if target is AgentState.WORKING else target
        )
    if target is agent.state:
        return change.result(duplicate=True)
    change.agent(dataclasses.replace(
        agent, state=target, updated_at=cmd.at, state_reason=cmd.reason or str(target)
    ))
    return change.result()


@handles(DrainAgent)
def _drain(state: ControllerState, index: int, cmd: DrainAgent) -> Result:
    change = Change(state, index, cmd)
    agent = state.agent(cmd.agent_id)
    if agent is None:
        return change.reject(RejectCode.UNKNOWN_AGENT, f"no agent {cmd.agent_id!r}")
    if agent.state is AgentState.DEREGISTERED:
        return change.reject(RejectCode.INVALID_TRANSITION,
                             f"agent {cmd.agent_id} is deregistered: nothing to drain")
    if agent.state is AgentState.DRAINING:
        return change.result(duplicate=True)
    change.agent(dataclasses.replace(
        agent, state=AgentState.DRAINING, updated_at=cmd.at, drain_deadline=cmd.deadline,
        state_reason="draining",
    ))
    change.settle_agent(cmd.agent_id, cmd.at)
    return change.result()


def _remove_jobs(change: Change, agent_id: str, outcome: AttemptOutcome, at: float,
                 reason: str) -> None:
    for job in change.state.jobs_on_agent(agent_id):
        change.take_back(job, outcome, at, reason)


@handles(DeregisterAgent)
def _deregister(state: ControllerState, index: int, cmd: DeregisterAgent) -> Result:
    change = Change(state, index, cmd)
    agent = state.agent(cmd.agent_id)
    if agent is None:
        return change.reject(RejectCode.UNKNOWN_AGENT, f"no agent {cmd.agent_id!r}")
    if agent.state is AgentState.DEREGISTERED:
        return change.result(duplicate=True)
    _remove_jobs(change, cmd.agent_id, AttemptOutcome.ABORTED, cmd.at,
                 f"agent {cmd.agent_id} was deregistered ({cmd.reason})")
    change.agent(dataclasses.replace(
        agent, state=AgentState.DEREGISTERED, updated_at=cmd.at, state_reason=cmd.reason,
        drain_deadline=None,
    ))
    return change.result()


@handles(ExpireAgent)
def _expire(state: ControllerState, index: int, cmd: ExpireAgent) -> Result:
    change = Change(state, index, cmd)
    agent = state.agent(cmd.agent_id)
    if agent is None:
        return change.reject(RejectCode.UNKNOWN_AGENT, f"no agent {cmd.agent_id!r}")
    if agent.state is AgentState.DEREGISTERED:
        return change.reject(RejectCode.INVALID_TRANSITION,
                             f"agent {cmd.agent_id} is deregistered: it cannot expire")
    if agent.state is AgentState.UNHEALTHY and not state.load(cmd.agent_id):
        return change.result(duplicate=True)
    _remove_jobs(change, cmd.agent_id, AttemptOutcome.LOST, cmd.at,
                 f"agent {cmd.agent_id} stopped sending heartbeats")
    draining = agent.state is AgentState.DRAINING
    change.agent(dataclasses.replace(
        agent,
        state=AgentState.DEREGISTERED if draining else AgentState.UNHEALTHY,
        updated_at=cmd.at,
        state_reason="missed heartbeats" + (" while draining" if draining else ""),
        drain_deadline=None,
    ))
    return change.result()
