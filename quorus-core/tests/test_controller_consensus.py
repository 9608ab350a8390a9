"""ControllerState behind the durable ``standalone`` consensus backend: commands proposed,
the node restarted (replaying its log, or restoring a snapshot plus the log after it), and the
same state comes back and keeps answering the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from quorus.core.consensus import ConsensusConfig, load_backend
from quorus.core.controller import (
    AgentCapabilities,
    Applied,
    AssignJob,
    CompleteAttempt,
    ControllerState,
    ExpireAgent,
    JobState,
    RegisterAgent,
    RejectCode,
    Rejected,
    SubmitJob,
)
from quorus.core.controller.scheduler import schedule

pytestmark = pytest.mark.anyio

SHA = "5e" * 32


def config(tmp_path: Path, snapshot_every: int = 10_000) -> ConsensusConfig:
    return ConsensusConfig(node_id="c1", data_dir=tmp_path / "data",
                           snapshot_every=snapshot_every)


@pytest.mark.parametrize("snapshot_every", [10_000, 7])
async def test_state_survives_a_restart(tmp_path: Path, snapshot_every: int) -> None:
    state = ControllerState()
    async with load_backend("standalone", config(tmp_path, snapshot_every), state) as backend:
        for i in range(3):
            result = await backend.propose(RegisterAgent(
                f"a{i}", 1.0, capabilities=AgentCapabilities(("file",), 2)).encode())
            assert isinstance(result, Applied)
        for j in range(8):
            await backend.propose(SubmitJob.new("/in", f"/out/{j}", job_id=f"j{j}",
                                                at=2.0, priority=j % 2).encode())
        for assignment in schedule(state).assignments:
            assert (await backend.propose(assignment.command(3.0).encode())).ok
        done = await backend.propose(CompleteAttempt("j1", "a0", 1, 4.0, 10, SHA).encode())
        assert isinstance(done, Applied), done
        await backend.propose(ExpireAgent("a1", 5.0).encode())
        before = state.snapshot()
        index = backend.status()["applied_index"]

    again = ControllerState()
    async with load_backend("standalone", config(tmp_path, snapshot_every), again) as backend:
        assert backend.status()["applied_index"] == index
        if snapshot_every < index:
            assert backend.status()["snapshot_index"] > 0
        again.check_indexes()
        assert again.snapshot() == before
        assert again.jobs["j1"].state is JobState.COMPLETED
        assert again.count(JobState.QUEUED) == 4  # 2 never placed + 2 back from a1
        # The restored state answers exactly as the old one did: a late report is stale.
        late = await backend.propose(CompleteAttempt("j0", "a1", 1, 6.0, 10, SHA).encode())
        assert isinstance(late, Rejected) and late.code is RejectCode.STALE_ATTEMPT
        nxt = next(again.queued())
        result = await backend.propose(AssignJob(nxt.id, "a0", nxt.attempt, 7.0).encode())
        assert isinstance(result, Applied) and again.jobs[nxt.id].agent_id == "a0"
