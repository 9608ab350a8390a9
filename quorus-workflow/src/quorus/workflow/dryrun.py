"""Dry run: everything a run would check, and nothing moved.

For each step in plan order it binds the locations (reporting every variable that cannot be
bound, with where it is used), loads the protocol plugins (naming what to install), stats the
source (exists, size within the step's effective ``validation``, which the report shows) and
checks the destination can be written (its directory exists or can be created and is
writable, for local paths; the parent exists, for remote ones). It also runs
the workflow's own ``validation`` checks (``connectivity``, ``diskSpace``,
``yamlDependencies``) and checks every action's spec. What depends on results of earlier
steps is reported as decided at run time. Remote checks are bounded by a timeout each.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from quorus.core.engine import TransferEngine
from quorus.core.errors import NotFoundError, QuorusError
from quorus.core.protocol import TransferProtocol
from quorus.core.units import format_size, parse_size
from quorus.core.uri import Location, parse_location
from quorus.workflow.actions import validate_action
from quorus.workflow.binding import Binder, NotYet
from quorus.workflow.bound import BoundStep, bind_step, size_range
from quorus.workflow.expr import ExpressionError
from quorus.workflow.model import TransferStep
from quorus.workflow.planner import Plan, PlannedStep

#: Seconds one remote check (stat, connect) may take.
CHECK_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the dry run found: ``level`` is ``error`` (the run would fail or not
    start), ``warning`` or ``info``; ``step`` is the step id, or empty for the workflow."""

    level: str
    message: str
    step: str = ""

    def to_json(self) -> dict[str, str]:
        return {"level": self.level, "step": self.step, "message": self.message}


@dataclass(slots=True)
class StepCheck:
    """What the dry run learnt about one step."""

    step: str
    level: int
    source: str = ""
    destination: str = ""
    size: int | None = None
    condition: str | None = None
    #: The checks of the data moved, ``defaults`` merged in: ``expectedSize`` (``min``,
    #: ``max``) and ``checksum`` (``sha256:HEX``), each only when set.
    validation: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "level": self.level, "source": self.source,
                "destination": self.destination, "size": self.size,
                "condition": self.condition, "validation": self.validation}


@dataclass(slots=True)
class DryRunReport:
    """The plan as it would run, and every finding."""

    plan: Plan
    steps: list[StepCheck] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "plan": self.plan.to_json(),
                "steps": [s.to_json() for s in self.steps],
                "findings": [f.to_json() for f in self.findings]}


async def dry_run(plan: Plan, binder: Binder, *, check_remote: bool = True) -> DryRunReport:
    """Check ``plan`` as a run would, moving nothing."""
    report = DryRunReport(plan)
    for problem in _unbound(binder):
        report.findings.append(problem)
    for where, notice in plan.workflow.all_notices():
        report.findings.append(Finding(notice.level, f"cannot be done here: {notice.message}"
                                       if notice.level == "error" else notice.message,
                                       "" if where == "workflow" else where))
    engines = _Engines()
    try:
        for planned in plan.steps:
            report.steps.append(await _check_step(planned, binder, engines, report, check_remote))
    finally:
        await engines.aclose()
    report.findings.extend(await _workflow_checks(binder, check_remote))
    for group in plan.workflow.groups:
        for spec in (*group.on_success, *group.on_failure):
            report.findings.extend(_action_findings(spec, f"group {group.name}"))
    for spec in (*plan.workflow.on_success, *plan.workflow.on_failure):
        report.findings.extend(_action_findings(spec, "workflow"))
    return report


def _unbound(binder: Binder) -> list[Finding]:
    """One finding per cause, naming where the unbound references are used."""
    _, problems = binder.static_bindings()
    uses: dict[str, list[str]] = {}
    for where, ref, why in problems:
        places = uses.setdefault(why, [])
        place = f"{where} ({ref})" if ref.text not in why else where
        if place not in places:
            places.append(place)
    findings: list[Finding] = []
    for why, places in uses.items():
        shown = "; ".join(places[:4]) + (f"; and {len(places) - 4} more" if len(places) > 4
                                         else "")
        findings.append(Finding("error", f"unresolvable: {why} — used in {shown}"))
    return findings


async def _check_step(planned: PlannedStep, binder: Binder, engine: _Engines,
                      report: DryRunReport, check_remote: bool) -> StepCheck:
    step = planned.step
    check = StepCheck(planned.step_id, planned.level, condition=step.condition,
                      validation=_validation(step))
    if step.condition:
        report.findings.append(Finding("info", f"condition {step.condition} is evaluated at "
                                               f"run time", planned.step_id))
    group = binder.workflow.group(planned.group)
    try:
        bound = bind_step(binder, step, group, None)
    except NotYet as exc:
        report.findings.append(Finding("info", f"bound at run time: {exc.message}",
                                       planned.step_id))
        return check
    except ExpressionError:
        return check  # reported once, workflow-wide, by _unbound
    except QuorusError as exc:
        report.findings.append(Finding("error", str(exc), planned.step_id))
        return check
    check.source, check.destination = bound.source_display, bound.destination_display
    # A source that an earlier step writes does not exist before the run: nothing to stat.
    writer = next((s for s in report.steps if s.destination == check.source), None)
    if writer is not None:
        report.findings.append(Finding("info", f"source {check.source} is written by "
                                               f"{writer.step} earlier in this run",
                                       planned.step_id))
        check.size = writer.size
    else:
        check.size = await _check_source(bound, engine, report, check_remote)
    await _check_destination(bound, engine, report, check_remote)
    return check


def _validation(step: TransferStep) -> dict[str, Any]:
    found: dict[str, Any] = {}
    try:
        bounds = size_range(step)  # what the run checks, here and on the quorum
    except QuorusError:
        bounds = None
    if bounds is not None:
        found["expectedSize"] = {"min": bounds.min, "max": bounds.max}
    if step.checksum is not None:
        found["checksum"] = step.checksum
    return found


async def _check_source(bound: BoundStep, engine: _Engines, report: DryRunReport,
                        check_remote: bool) -> int | None:
    location = parse_location(bound.source)
    step_id = bound.step.step_id
    try:
        protocol = engine.protocol(bound, location)
        if location.scheme != "file" and not check_remote:
            expected: int | None = bound.step.expected_size
            return expected
        with anyio.fail_after(CHECK_TIMEOUT):
            info = await protocol.stat(location)
    except NotFoundError:
        report.findings.append(Finding("error", f"source {location.redacted()} does not exist",
                                       step_id))
        return None
    except TimeoutError:
        report.findings.append(Finding("error", f"source {location.redacted()}: no answer in "
                                                f"{CHECK_TIMEOUT:g} s", step_id))
        return None
    except QuorusError as exc:
        report.findings.append(Finding("error", f"source: {exc}", step_id))
        return None
    if info.is_dir:
        report.findings.append(Finding("error", f"source {location.redacted()} is a directory",
                                       step_id))
    try:
        bounds = size_range(bound.step)  # what the run checks, here and on the quorum
        if info.size is not None and bounds is not None:
            bounds.check(info.size, f"source {location.redacted()}")
    except QuorusError as exc:  # the size does not fit (or the bounds contradict)
        report.findings.append(Finding("error", str(exc), step_id))
    return info.size


async def _check_destination(bound: BoundStep, engine: _Engines, report: DryRunReport,
                             check_remote: bool) -> None:
    location = parse_location(bound.destination)
    step_id = bound.step.step_id
    if location.scheme == "file":
        problem = _local_writable(Path(location.path),
                                  bound.step.destination.create_directories is not False)
        if problem:
            report.findings.append(Finding("error", problem, step_id))
        return
    try:
        protocol = engine.protocol(bound, location)
        if not check_remote:
            return
        with anyio.fail_after(CHECK_TIMEOUT):
            await protocol.stat(location.parent)
    except NotFoundError:
        level = "info" if bound.step.destination.create_directories is not False else "error"
        report.findings.append(Finding(level, f"destination directory of "
                                              f"{location.redacted()} does not exist yet",
                                       step_id))
    except TimeoutError:
        report.findings.append(Finding("error", f"destination {location.redacted()}: no answer "
                                                f"in {CHECK_TIMEOUT:g} s", step_id))
    except QuorusError as exc:
        report.findings.append(Finding("error", f"destination: {exc}", step_id))


class _Engines:
    """One engine per distinct set of protocol options, closed together."""

    def __init__(self) -> None:
        self._engines: dict[str, TransferEngine] = {}

    def protocol(self, bound: BoundStep, location: Location) -> TransferProtocol:
        key = bound.options_key
        engine = self._engines.get(key)
        if engine is None:
            engine = self._engines[key] = TransferEngine(
                protocol_options={k: dict(v) for k, v in bound.protocol_options.items()})
        protocol = engine.protocol(location)
        protocol.check_location(location)
        return protocol

    async def aclose(self) -> None:
        for engine in self._engines.values():
            await engine.aclose()


def _local_writable(path: Path, create: bool) -> str | None:
    directory = path.parent
    if directory.is_dir():
        return None if _can_write(directory) else f"cannot write to {directory}"
    if not create:
        return f"destination directory {directory} does not exist (createDirectories is false)"
    ancestor = directory
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"cannot create {directory}: {ancestor} is not a directory"
    return None if _can_write(ancestor) else f"cannot create {directory} under {ancestor}"


def _can_write(directory: Path) -> bool:
    import os

    return os.access(directory, os.W_OK | os.X_OK)


async def _workflow_checks(binder: Binder, check_remote: bool) -> list[Finding]:
    findings: list[Finding] = []
    for check in binder.workflow.checks:
        name, kind = check.get("name", "?"), check.get("type")
        try:
            if kind == "diskSpace":
                findings.append(_disk_space(name, check, binder))
            elif kind == "connectivity":
                findings.extend(await _connectivity(name, check, binder, check_remote))
            elif kind == "yamlDependencies":
                findings.append(Finding("info", f"{name}: every referenced definition was found"))
        except ExpressionError as exc:
            findings.append(Finding("error", f"{name}: {exc.message}"))
        except QuorusError as exc:  # a unit the schema lets through (``required: 1PB``)
            findings.append(Finding("error", f"{name}: {exc}"))
    return findings


def _disk_space(name: str, check: Mapping[str, Any], binder: Binder) -> Finding:
    path = Path(str(binder.render(check.get("path", "."))))
    required = parse_size(check.get("required", 0), what="required")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < required:
        return Finding("error", f"{name}: {probe} has {format_size(free)} free, "
                                f"{format_size(required)} required")
    return Finding("info", f"{name}: {probe} has {format_size(free)} free")


async def _connectivity(name: str, check: Mapping[str, Any], binder: Binder,
                        check_remote: bool) -> list[Finding]:
    findings: list[Finding] = []
    for target in check.get("targets") or ():
        text = str(binder.render(target))
        if not check_remote:
            findings.append(Finding("info", f"{name}: {text} not checked (--offline)"))
            continue
        host, port = _host_port(text)
        try:
            with anyio.fail_after(CHECK_TIMEOUT):
                if port is None:
                    await anyio.getaddrinfo(host, None)
                else:
                    stream = await anyio.connect_tcp(host, port)
                    await stream.aclose()
        except (OSError, TimeoutError, socket.gaierror) as exc:
            findings.append(Finding("error", f"{name}: cannot reach {text}: "
                                             f"{getattr(exc, 'strerror', None) or exc}"))
        else:
            findings.append(Finding("info", f"{name}: {text} is reachable"))
    return findings


def _host_port(text: str) -> tuple[str, int | None]:
    if "://" in text:
        location = parse_location(text)
        return location.host or "", location.port
    host, _, port = text.rpartition(":")
    if host and port.isdigit():
        return host.strip("[]"), int(port)
    return text, None


def _action_findings(spec: Mapping[str, Any], where: str) -> Sequence[Finding]:
    return [Finding("error", f"{where} action {spec.get('action', '?')}: {problem}")
            for problem in validate_action(spec)]


__all__ = ["DryRunReport", "Finding", "StepCheck", "dry_run"]
