"""The ``rollback`` action: remove what an execution left beside its destinations.

``deletePartial`` (the default) removes, for each failed or cancelled step, the engine's
partial file and its record (``.NAME.quorus-partial[.json]``) and, when the step ran as a
job, the agent's staging files of that job (``.NAME.JOB.aN.quorus-attempt`` and their own
partial files). ``deleteAll`` does that for every finished step and also deletes the
destinations of the steps that completed. Files already gone are not errors; nothing else
beside the destinations is touched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from quorus.core.agent.attempt import STAGING_SUFFIX, staging_location
from quorus.core.engine.resume import PARTIAL_SUFFIX, RECORD_SUFFIX, PartialFile, stat_or_none
from quorus.core.errors import NotFoundError, TransferError
from quorus.core.protocol import TransferProtocol
from quorus.core.uri import Location
from quorus.workflow.actions.base import (
    ActionContext,
    ActionError,
    is_template,
    parse_target,
    show_location,
)
from quorus.workflow.summary import ActionOutcome, ExecutionSummary, StepOutcome, StepStatus

DELETE_PARTIAL = "deletePartial"
DELETE_ALL = "deleteAll"
STRATEGIES = (DELETE_PARTIAL, DELETE_ALL)
_UNFINISHED = (StepStatus.FAILED, StepStatus.CANCELLED)
_MAX_SHOWN = 10


def staging_pattern(destination: Location, job_id: str) -> re.Pattern[str]:
    """Names of every attempt's staging file of ``job_id`` for ``destination``, and of the
    partial file and record the engine writes beside each."""
    # The agent shortens long names and job ids; build the name it would use for attempt 0
    # and let the attempt number vary.
    stem = staging_location(destination, job_id, 0).name.removesuffix(f"0{STAGING_SUFFIX}")
    return re.compile(
        rf"^\.?{re.escape(stem)}\d+{re.escape(STAGING_SUFFIX)}"
        rf"(?:{re.escape(PARTIAL_SUFFIX)}|{re.escape(RECORD_SUFFIX)})?$"
    )


@dataclass(slots=True)
class _Plan:
    """What one rollback removes, in order, and what it could not check."""

    files: list[tuple[str, Location]] = field(default_factory=list)  # (why, where)
    notes: list[str] = field(default_factory=list)


class RollbackAction:
    """``{action: rollback, strategy: deletePartial | deleteAll}``."""

    name = "rollback"

    def validate(self, spec: Mapping[str, Any]) -> list[str]:
        strategy = spec.get("strategy", DELETE_PARTIAL)
        if is_template(strategy) or strategy in STRATEGIES:
            return []
        return [f"rollback: unknown strategy {strategy!r}: use {' or '.join(STRATEGIES)}"]

    async def __call__(
        self, spec: Mapping[str, Any], summary: ExecutionSummary, context: ActionContext
    ) -> ActionOutcome:
        problems = self.validate(spec)
        if problems:
            raise ActionError("; ".join(problems))
        strategy = str(spec.get("strategy", DELETE_PARTIAL))
        plan = _Plan()
        removed: list[str] = []
        errors: list[str] = []
        async with AsyncExitStack() as stack:
            protocols: dict[str, TransferProtocol] = {}

            async def protocol_for(location: Location) -> TransferProtocol:
                if location.scheme not in protocols:
                    protocols[location.scheme] = await stack.enter_async_context(
                        context.protocol(location.scheme))
                return protocols[location.scheme]

            for step in summary.steps:
                text = context.destinations.get(step.step) or step.destination
                if not text or not self._concerns(step, strategy):
                    continue
                destination = parse_target(text, self.name)
                protocol = await protocol_for(destination)
                await self._collect(step, destination, protocol, strategy, plan)
            for why, location in plan.files:
                protocol = await protocol_for(location)
                shown = f"{why} {show_location(location)}"
                if context.dry_run:
                    if await self._exists(protocol, location, errors):
                        removed.append(shown)
                    continue
                try:
                    await protocol.delete(location)
                except NotFoundError:
                    continue
                except TransferError as exc:
                    errors.append(f"{shown}: {exc}")
                    continue
                removed.append(shown)
        return ActionOutcome(self.name, strategy, not errors,
                             self._describe(removed, errors, plan.notes, context.dry_run))

    @staticmethod
    def _concerns(step: StepOutcome, strategy: str) -> bool:
        if step.status in _UNFINISHED:
            return True
        return strategy == DELETE_ALL and step.status is StepStatus.COMPLETED

    @staticmethod
    async def _collect(step: StepOutcome, destination: Location, protocol: TransferProtocol,
                       strategy: str, plan: _Plan) -> None:
        # The engine and the agent write beside a destination only when they can rename
        # into place; other destinations (plain HTTP PUT) have nothing beside them.
        if protocol.capabilities(destination).rename:
            partial = PartialFile.beside(destination)
            plan.files.append((f"partial file of {step.step}", partial.data))
            plan.files.append((f"partial record of {step.step}", partial.record))
            if step.job_id:
                await RollbackAction._collect_staging(step, destination, protocol, plan)
        if strategy == DELETE_ALL and step.status is StepStatus.COMPLETED:
            plan.files.append((f"destination of {step.step}", destination))

    @staticmethod
    async def _collect_staging(step: StepOutcome, destination: Location,
                               protocol: TransferProtocol, plan: _Plan) -> None:
        assert step.job_id is not None
        directory = destination.parent
        if not protocol.capabilities(directory).listing:
            plan.notes.append(f"the {directory.scheme} protocol cannot list "
                              f"{show_location(directory)}: staging files of job "
                              f"{step.job_id} not checked")
            return
        try:
            entries = await protocol.list(directory)
        except NotFoundError:
            return
        except TransferError as exc:
            plan.notes.append(f"cannot list {show_location(directory)}: {exc}; staging files "
                              f"of job {step.job_id} not checked")
            return
        pattern = staging_pattern(destination, step.job_id)
        for info in entries:
            if not info.is_dir and pattern.match(info.name):
                plan.files.append((f"staging file of {step.step}",
                                   destination.sibling(info.name)))

    @staticmethod
    async def _exists(protocol: TransferProtocol, location: Location, errors: list[str]) -> bool:
        try:
            return await stat_or_none(protocol, location) is not None
        except TransferError as exc:
            errors.append(f"cannot check {show_location(location)}: {exc}")
            return False

    @staticmethod
    def _describe(removed: list[str], errors: list[str], notes: list[str], dry_run: bool) -> str:
        verb = "would remove" if dry_run else "removed"
        if not removed:
            text = "nothing to remove" if not dry_run else "would remove nothing"
        else:
            listed = "; ".join(removed[:_MAX_SHOWN])
            more = len(removed) - _MAX_SHOWN
            text = f"{verb} {len(removed)}: {listed}" + (f" (and {more} more)" if more > 0
                                                          else "")
        if errors:
            text += f"; {len(errors)} could not be removed: " + "; ".join(errors[:_MAX_SHOWN])
        if notes:
            text += "; " + "; ".join(notes)
        return text


__all__ = ["DELETE_ALL", "DELETE_PARTIAL", "STRATEGIES", "RollbackAction", "staging_pattern"]
