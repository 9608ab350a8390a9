"""What quota admission costs job submission: REST submissions per second to an in-process
controller (standalone consensus) with the tenant state module and every quota configured,
against the same controller without the module; and, below the REST API, ``SubmitJob``
commands applied per second to the state machine alone, with and without the module.

Rounds alternate between the two set-ups so drift in the machine's load hits both; the ratio
of the medians is reported (the target: admission adds under 10 %, a ratio of at least 0.90).

    .venv/bin/python quorus-tenant/benchmarks/admission_bench.py --jobs 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import quorus.core.hooks
from quorus.core.controller import ControllerState, SubmitJob
from quorus.core.controller.model import JobOptions
from quorus.core.hooks import hookimpl, new_plugin_manager
from quorus.core.testing.controller import TOKEN, running_controller
from quorus.tenant.commands import ApplyTenants
from quorus.tenant.routes import TenantExtension
from quorus.tenant.state import TenantStateModule
from quorus.tenant.testing import QUOTA_TENANTS as TENANTS


class Modules:
    """A hook plugin giving the controller the tenant module, or nothing."""

    def __init__(self, with_tenants: bool) -> None:
        self.with_tenants = with_tenants

    @hookimpl
    def quorus_controller_state_modules(self) -> list[Any]:
        return [TenantStateModule()] if self.with_tenants else []


async def rest_round(with_tenants: bool, jobs: int, concurrency: int) -> float:
    """Jobs per second submitted over REST to a fresh controller."""
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(Modules(with_tenants))
    quorus.core.hooks.plugin_manager = lambda: manager
    extensions = [TenantExtension()] if with_tenants else []
    # Inside team's default storage root (/data/tenants/team), which admission checks too.
    body: dict[str, Any] = {"source": "/data/tenants/team/in",
                            "destination": "/data/tenants/team/out"}
    if with_tenants:
        body.update(tenant="team", expected_size=1000, bandwidth_mbps=100)
    with tempfile.TemporaryDirectory() as directory:
        async with running_controller(Path(directory) / "c", extensions=extensions,
                                      schedule_interval=3600.0) as server:
            base = f"http://{server.settings.listen_http}"
            headers = {"Authorization": f"Bearer {TOKEN}"}
            limits = httpx.Limits(max_connections=concurrency)
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60,
                                         limits=limits) as client:
                if with_tenants:
                    answer = await client.put("/v1/tenants", json={"yaml": TENANTS})
                    answer.raise_for_status()
                ids = iter(range(jobs))

                async def worker() -> None:
                    for n in ids:
                        answer = await client.post("/v1/jobs", json={**body, "id": f"j{n}"})
                        if answer.status_code != 201:
                            raise RuntimeError(f"submission refused: {answer.text}")

                started = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for _ in range(concurrency):
                        tg.start_soon(worker)
                elapsed = time.perf_counter() - started
    return jobs / elapsed


def state_round(with_tenants: bool, jobs: int) -> float:
    """``SubmitJob`` commands per second applied to the state machine alone."""
    state = ControllerState([TenantStateModule()] if with_tenants else [])
    index = itertools.count(1)
    if with_tenants:
        state.apply(next(index), ApplyTenants(0.0, TENANTS).encode())
    options = JobOptions(expected_size=1000, bandwidth_mbps=100)
    tenant = "team" if with_tenants else "default"
    commands = [SubmitJob.new("/data/tenants/team/in", f"/data/tenants/team/out/{n}",
                              job_id=f"j{n}", at=1e9 + n,
                              options=options, tenant=tenant).encode() for n in range(jobs)]
    started = time.perf_counter()
    for command in commands:
        state.apply(next(index), command)
    return jobs / (time.perf_counter() - started)


def report(name: str, without: list[float], with_: list[float], unit: str) -> None:
    base, tenants = statistics.median(without), statistics.median(with_)
    print(f"{name}: without the tenant module {base:,.0f} {unit}, with quotas "
          f"{tenants:,.0f} {unit}; ratio {tenants / base:.3f} "
          f"(admission costs {100 * (1 - tenants / base):+.1f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="REST submissions per round")
    parser.add_argument("--state-jobs", type=int, default=50_000,
                        help="commands per state-machine round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rest: dict[bool, list[float]] = {False: [], True: []}
    machine: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(args.rounds):
        order = (False, True) if round_ % 2 == 0 else (True, False)
        for with_tenants in order:
            machine[with_tenants].append(state_round(with_tenants, args.state_jobs))
            rest[with_tenants].append(anyio.run(rest_round, with_tenants, args.jobs,
                                                args.concurrency))
    report("state machine", machine[False], machine[True], "commands/s")
    report("REST submission", rest[False], rest[True], "jobs/s")


if __name__ == "__main__":
    main()
