"""A workflow on the controller quorum survives the leader's death (three controllers on Raft,
two agents, all OS processes): six transfers in two levels are submitted through REST, the
leader is killed with ``kill -9`` while the first level's jobs run, and the new leader drives
the execution to the end from replicated state. Every file arrives with its source's SHA-256,
each step has exactly one job and that job completed once, and the summary says completed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from quorus.core.testing.fixtures import payload_bytes

from tests.fleet_cluster import FleetCluster, completed_attempts, sha256_of, wait_for

pytestmark = pytest.mark.anyio

SIZE = 512 * 1024
FIRST = ("alpha", "bravo", "charlie")
SECOND = ("delta", "echo", "foxtrot")
EXECUTION = "quorum-run"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def transfers(names: tuple[str, ...], source: str, target: str, sums: dict[str, str]) -> str:
    # About a second per transfer at 500 KB/s, so jobs are running when the leader dies.
    return "".join(f"""
            - name: {name}
              source: {{path: "${{ROOT}}/{source}/{name}.bin", options: {{chunk_size: 65536}}}}
              destination: {{path: "${{ROOT}}/{target}/{name}.bin"}}
              bandwidth: 500KB/s
              validation:
                checksum: {{algorithm: SHA-256, value: "{sums[name]}"}}""" for name in names)


def workflow_yaml(sums: dict[str, str]) -> str:
    """Level one copies ``in`` → ``mid``; level two, once all of it completed, ``mid`` →
    ``out``; every transfer verifies the SHA-256 the workflow states."""
    return f"""\
apiVersion: quorus.dev/v1
kind: TransferWorkflow
metadata:
  name: two-levels
spec:
  groups:
    - name: first
      transferGroup:
        spec:
          execution: {{strategy: parallel, maxConcurrency: 3}}
          transfers:{transfers(FIRST, "in", "mid", sums)}
    - name: second
      dependsOn: [first]
      transferGroup:
        spec:
          execution: {{strategy: parallel, maxConcurrency: 3}}
          transfers:{transfers(SECOND, "mid", "out", sums)}
"""


async def test_an_execution_completes_on_the_new_leader_with_no_step_run_twice(
    tmp_path: Path,
) -> None:
    cluster = FleetCluster(tmp_path / "cluster")
    (tmp_path / "cluster").mkdir()
    sums: dict[str, str] = {}
    for number, name in enumerate(FIRST + SECOND):
        # Level two copies files of its own, already in ``mid``, that level one does not write.
        folder = "in" if name in FIRST else "mid"
        path = tmp_path / "data" / folder / f"{name}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload_bytes(SIZE, seed=700 + number))
        sums[name] = sha256_of(path)
    for folder in ("mid", "out"):
        (tmp_path / "data" / folder).mkdir(exist_ok=True)
    body = {"id": EXECUTION, "files": {"two-levels.yaml": workflow_yaml(sums)},
            "sets": {"ROOT": str(tmp_path / "data")}}
    try:
        cluster.start_all()
        await cluster.leader()
        cluster.start_agent("a1")
        cluster.start_agent("a2")
        await cluster.wait_agents("a1", "a2")

        answer = await cluster.request("POST", "/v1/workflows/executions", json=body)
        assert answer is not None and answer.status_code == 201, answer.text if answer else None
        assert answer.json()["plan"]["levels"] == [[f"first/{n}" for n in FIRST],
                                                   [f"second/{n}" for n in SECOND]]
        leader = await cluster.leader()

        async def first_level_running() -> bool:
            jobs = await cluster.jobs()
            return any(j["state"] == "running" for j in jobs.values())

        await wait_for(first_level_running, 20, "a job of the first level running")
        cluster.kill(leader)

        views: list[dict[str, Any]] = []

        async def finished() -> dict[str, Any] | None:
            answer = await cluster.request("GET", f"/v1/workflows/executions/{EXECUTION}",
                                           fail=False, within=5)
            if answer is None or answer.status_code != 200:
                return None
            view = dict(answer.json())
            views.append(view)
            ended = view["status"] in ("completed", "failed", "cancelled")
            return view if ended and view["actions_recorded"] else None

        try:
            view = await wait_for(finished, 90, "the execution to end", interval=0.3)
        except AssertionError:
            last = views[-1] if views else None
            raise AssertionError(f"the execution did not end: {last}\n"
                                 f"{cluster.log(next(iter(cluster.controllers)))[-3000:]}"
                                 ) from None
        assert view["status"] == "completed", view
        assert await cluster.leader() != leader

        jobs = await cluster.jobs()
        workflow_jobs = {j: v for j, v in jobs.items() if j.startswith(f"wf-{EXECUTION}-")}
        steps = {s["step"]: s for s in view["steps"]}
        assert sorted(steps) == sorted([f"first/{n}" for n in FIRST] +
                                       [f"second/{n}" for n in SECOND])
        # One job per step, under the step's deterministic id, completed exactly once.
        assert sorted(workflow_jobs) == sorted(s["job_id"] for s in steps.values())
        for step_id, step in steps.items():
            name = step_id.split("/")[1]
            job = workflow_jobs[step["job_id"]]
            assert step["status"] == "completed", step
            assert job["state"] == "completed", job
            assert len(completed_attempts(job)) == 1, (step_id, job["attempts"])
            assert step["sha256"] == job["sha256"] == sums[name]
            target = tmp_path / "data" / ("mid" if step_id.startswith("first/") else "out")
            assert sha256_of(target / f"{name}.bin") == sums[name]
        # Level two started only after level one had ended.
        first_end = max(steps[f"first/{n}"]["finished_at"] for n in FIRST)
        assert min(steps[f"second/{n}"]["started_at"] for n in SECOND) >= first_end
    finally:
        cluster.stop_everything()
