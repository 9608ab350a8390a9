"""Whether an agent may run a job (labels, required site) and how near it is to the data.

Shared by the scheduler, which chooses, and the state machine, which checks every assignment
again so that no leader can place a job against its rules.
"""

from __future__ import annotations

from quorus.core.controller.model import AgentLocation, AgentRecord, JobPlacement, Site

#: Proximity ranks, best first: same zone, same datacenter, same region, elsewhere.
SAME_ZONE, SAME_DATACENTER, SAME_REGION, ELSEWHERE = range(4)


def placement_problem(placement: JobPlacement, agent: AgentRecord) -> str:
    """Why ``agent`` may not run a job with ``placement``, or ``""`` when it may."""
    if placement.required_site is not None and not placement.required_site.contains(
        agent.location.site
    ):
        return f"is not in {placement.required_site}"
    for requirement in placement.affinity:
        if not requirement.matches(agent.labels):
            return f"does not match label {requirement}"
    for requirement in placement.anti_affinity:
        if requirement.matches(agent.labels):
            return f"matches excluded label {requirement}"
    return ""


def proximity(placement: JobPlacement, location: AgentLocation) -> int:
    """How near an agent at ``location`` is to where the job wants to run or its data lives
    (preferred site, source site, destination site): :data:`SAME_ZONE` (also when the job
    says nothing) to :data:`ELSEWHERE`."""
    targets = [s for s in (placement.preferred_site, placement.source_site,
                           placement.destination_site) if s is not None]
    if not targets:
        return SAME_ZONE
    return min(_rank(target, location) for target in targets)


def _rank(target: Site, location: AgentLocation) -> int:
    same_dc = target.datacenter is not None and target.datacenter == location.datacenter
    dc_compatible = target.datacenter is None or same_dc
    if target.zone is not None and target.zone == location.zone and dc_compatible:
        return SAME_ZONE
    if same_dc:
        return SAME_DATACENTER
    if target.region is not None and target.region == location.region:
        return SAME_REGION
    return ELSEWHERE


__all__ = ["ELSEWHERE", "SAME_DATACENTER", "SAME_REGION", "SAME_ZONE", "placement_problem",
           "proximity"]
