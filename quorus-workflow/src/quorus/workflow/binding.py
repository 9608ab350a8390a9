"""Binding ``${...}`` references to values for one execution.

A simple name (``${BACKUP_ROOT}``) comes from ``--set``, then the selected ``environments``
entry, then the group's and the workflow's ``variables`` (whose values are templates in their
turn). Dotted names: ``metadata.*``, ``tenant.*``, ``namespace.*``, ``workflow.*``,
``error.*`` (in actions), a transfer's or group's result (``user-data.success``,
``.status``, ``.bytes``, ``.duration``, ``.attempts``, ``.error``, ``.result.checksum``), or
a context value given with ``--set a.b=v`` or a tenant's ``variables`` (``acme-corp.api.x``).
Functions: ``${date:PATTERN[@ZONE]}`` at the execution's start time, ``${env:NAME}``, and
``${file:PATH}`` read only under the allowed roots.

:class:`Unbound` says a reference cannot be bound (with why); :class:`NotYet` that it names a
result that does not exist yet. On the quorum, the submitting client binds everything but
dates and results (:meth:`Binder.static_bindings`) and the controllers use those values, so
the client's environment and files are read once, where the operator ran the command.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from quorus.workflow.expr import (
    ExpressionError,
    Reference,
    Value,
    evaluate,
    find_references,
    parse_condition,
    parse_template,
    render_date,
    render_value,
)
from quorus.workflow.model import GroupDefinition, TransferStep, WorkflowDefinition
from quorus.workflow.summary import StepStatus

if TYPE_CHECKING:
    from quorus.workflow.execution import Execution

#: Where variables are defined rather than used: their names are checked where they are used.
_DEFINITIONS = ("workflow variables", "environment")
#: ``${file:...}`` reads at most this much.
MAX_FILE_VALUE = 64 * 1024
_RESULT_FIELDS = ("success", "status", "bytes", "duration", "attempts", "error", "result",
                  "sha256")


class Unbound(ExpressionError):
    """A reference that cannot be bound here."""


class NotYet(Unbound):
    """A reference to a result that does not exist yet."""


@dataclass(frozen=True, slots=True)
class RunContext:
    """What binding takes from outside the workflow's files."""

    started_at: float
    execution_id: str = ""
    environment: str | None = None
    sets: Mapping[str, str] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=dict)
    file_roots: tuple[Path, ...] = ()
    base_dir: Path | None = None
    tenants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Values already bound elsewhere (by the submitting client), by reference text.
    bound: Mapping[str, Any] = field(default_factory=dict)


class Binder:
    """Binds references for one execution of ``workflow`` (see the module docstring)."""

    def __init__(self, workflow: WorkflowDefinition, context: RunContext) -> None:
        self.workflow = workflow
        self.context = context
        if context.environment is not None and context.environment not in workflow.environments:
            raise Unbound(
                f"no environment {context.environment!r}; the workflow defines "
                f"{', '.join(sorted(workflow.environments)) or 'none'}", context.environment)
        self._environment = workflow.environments.get(context.environment or "", {})
        self._transfers: dict[str, list[TransferStep]] = {}
        for step in workflow.steps:
            self._transfers.setdefault(step.name, []).append(step)
        self._groups = {g.name: g for g in workflow.groups}
        self._zone = ZoneInfo(workflow.timezone)
        self._at = datetime.fromtimestamp(context.started_at, UTC)

    # -- lookups --------------------------------------------------------------------------------

    def lookup(self, ref: Reference, *, group: GroupDefinition | None = None,
               execution: Execution | None = None, error: str | None = None,
               _seen: tuple[str, ...] = ()) -> Value:
        """The value of ``ref`` seen from ``group``; raises :class:`Unbound`/:class:`NotYet`."""
        if ref.text in self.context.bound:
            value: Value = self.context.bound[ref.text]
            return value
        if ref.kind == "date":
            date: str = render_date(ref.argument, self._at, self._zone)
            return date
        if ref.kind == "env":
            found = self.context.environ.get(ref.argument)
            if found is None:
                raise Unbound(f"environment variable {ref.argument} is not set", str(ref))
            return found
        if ref.kind == "file":
            return self._file(ref)
        return self._name(ref, group, execution, error, _seen)

    def _name(self, ref: Reference, group: GroupDefinition | None, execution: Execution | None,
              error: str | None, seen: tuple[str, ...]) -> Value:
        name, parts = ref.argument, ref.segments
        if name in self.context.sets:
            return self.context.sets[name]
        if len(parts) == 1:
            return self._variable(ref, group, execution, seen)
        root, rest = parts[0], parts[1:]
        if root == "metadata":
            return _walk(self.workflow.metadata, rest, ref)
        if root == "tenant":
            try:
                return _walk(self._tenant_scope(group), rest, ref)
            except Unbound as exc:
                raise Unbound(f"{exc.message}; give it with --set {name}=VALUE or in the "
                              f"tenant's TenantConfiguration spec.variables", str(ref)) from None
        if root == "namespace":
            return _walk({"name": group.namespace if group else self.workflow.namespace}, rest,
                         ref)
        if root == "workflow":
            return _walk({"name": self.workflow.name, "execution": self.context.execution_id},
                         rest, ref)
        if root == "error":
            return _walk({"message": error or ""}, rest, ref)
        if root in self._transfers or root in self._groups:
            return self._result(ref, root, rest, group, execution)
        tenant = self.context.tenants.get(root)
        if tenant is not None:
            try:
                return _walk((tenant.get("spec") or {}).get("variables") or {}, rest, ref)
            except Unbound as exc:
                raise Unbound(f"{exc.message}; give it with --set {name}=VALUE or in the "
                              f"tenant's TenantConfiguration spec.variables", str(ref)) from None
        raise Unbound(f"{ref} is not defined here: give it with --set {name}=VALUE or in a "
                      f"tenant's variables", str(ref))

    def _variable(self, ref: Reference, group: GroupDefinition | None,
                  execution: Execution | None, seen: tuple[str, ...]) -> Value:
        name = ref.argument
        for scope in (self._environment, group.variables if group else {},
                      self.workflow.variables):
            if name in scope:
                raw = scope[name]
                if not isinstance(raw, str):
                    value: Value = raw
                    return value
                if name in seen:
                    raise Unbound(f"variables refer to each other in a loop: "
                                  f"{' → '.join((*seen, name))}", str(ref))
                template = parse_template(raw)
                single = template.single_reference
                inner = (*seen, name)
                if single is not None:
                    return self.lookup(single, group=group, execution=execution, _seen=inner)
                return template.render(functools.partial(
                    self.lookup, group=group, execution=execution, _seen=inner))
        elsewhere = sorted(env for env, values in self.workflow.environments.items()
                           if name in values)
        if elsewhere:
            raise Unbound(f"variable {name} is defined only in the environments "
                          f"{', '.join(elsewhere)}: choose one with --env", str(ref))
        raise Unbound(f"variable {name} is not defined", str(ref))

    def _tenant_scope(self, group: GroupDefinition | None) -> Mapping[str, Any]:
        tenant = group.tenant if group else self.workflow.tenant
        config = self.context.tenants.get(tenant, {})
        scope: dict[str, Any] = {"id": tenant, "name": tenant}
        scope.update((config.get("spec") or {}).get("variables") or {})
        return scope

    def _result(self, ref: Reference, root: str, rest: tuple[str, ...],
                group: GroupDefinition | None, execution: Execution | None) -> Value:
        if not rest or rest[0] not in _RESULT_FIELDS:
            raise Unbound(f"{ref}: a result has {', '.join(_RESULT_FIELDS)}", str(ref))
        if execution is None:
            raise NotYet(f"{ref} is the result of {root!r}, known only once it ran", str(ref))
        steps = self._transfers.get(root, [])
        local = [s for s in steps if group is not None and s.group == group.name]
        chosen = local or steps
        if len(chosen) == 1:
            outcome = execution.outcomes[chosen[0].step_id]
            if not outcome.status.finished:
                raise NotYet(f"{ref}: transfer {root!r} has not finished", str(ref))
            values: dict[str, Any] = {
                "success": outcome.status is StepStatus.COMPLETED,
                "status": str(outcome.status), "bytes": outcome.bytes,
                "duration": outcome.duration, "attempts": outcome.attempts,
                "error": outcome.error, "sha256": outcome.sha256,
                "result": {"checksum": outcome.sha256, "bytes": outcome.bytes,
                           "status": str(outcome.status)},
            }
            return _walk(values, rest, ref)
        if len(chosen) > 1:
            raise Unbound(f"{ref}: several groups have a transfer named {root!r}", str(ref))
        succeeded = execution.group_succeeded(root)
        if succeeded is None:
            raise NotYet(f"{ref}: group {root!r} has not finished", str(ref))
        return _walk({"success": succeeded,
                      "status": "completed" if succeeded else "failed"}, rest, ref)

    def _file(self, ref: Reference) -> str:
        base = self.context.base_dir or Path.cwd()
        path = (base / ref.argument).resolve()
        roots = [r.resolve() for r in (self.context.file_roots or (base,))]
        if not any(path == r or path.is_relative_to(r) for r in roots):
            raise Unbound(f"{ref}: {path} is outside the allowed roots "
                          f"({', '.join(str(r) for r in roots)}); allow it with "
                          f"--allow-file-root", str(ref))
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE_VALUE + 1)
        except OSError as exc:
            raise Unbound(f"{ref}: cannot read {path}: {exc.strerror}", str(ref)) from None
        if len(data) > MAX_FILE_VALUE:
            raise Unbound(f"{ref}: {path} is larger than {MAX_FILE_VALUE} bytes", str(ref))
        return data.decode("utf-8", errors="replace").rstrip("\n")

    # -- what the runners use ---------------------------------------------------------------------

    def render(self, value: Any, *, group: GroupDefinition | None = None,
               execution: Execution | None = None, error: str | None = None) -> Any:
        """``value`` (a string or nested structure) with every reference bound."""
        return render_value(value, lambda r: self.lookup(r, group=group, execution=execution,
                                                         error=error))

    def judge(self, execution: Execution, condition: str, group: GroupDefinition,
              step: TransferStep | None) -> tuple[bool, str]:
        """Evaluate a condition (an :data:`~quorus.workflow.execution.Judge`): its value and
        the values of the references it read, for the skip reason."""
        parsed = parse_condition(condition)
        seen: dict[str, Value] = {}

        def lookup(ref: Reference) -> Value:
            value = self.lookup(ref, group=group, execution=execution)
            seen[str(ref)] = value
            return value

        value = evaluate(parsed, lookup)
        detail = ", ".join(f"{k[2:-1]}={_shown(v)}" for k, v in seen.items())
        return value, detail

    def static_bindings(self) -> tuple[dict[str, Any], list[tuple[str, Reference, str]]]:
        """What only this machine can bind — every ``${env:...}`` and ``${file:...}`` of the
        workflow, by reference text — and every reference of a step, group or action that
        cannot be bound: ``(where, reference, why)``. Names are checked from where they are
        used (a variable with the group's tenant, say), so nothing tenant- or group-specific
        is fixed here; results, ``error.*`` and dates are bound when the time comes."""
        bound: dict[str, Any] = {}
        problems: list[tuple[str, Reference, str]] = []
        for where, group, ref in self.references():
            if ref.kind in ("env", "file"):
                if ref.text in bound:
                    continue
                try:
                    bound[ref.text] = self.lookup(ref)
                except ExpressionError as exc:
                    problems.append((where, ref, exc.message))
                continue
            if ref.kind == "date" or ref.root == "error" or where.startswith(_DEFINITIONS):
                continue
            try:
                self.lookup(ref, group=group)
            except NotYet:
                continue
            except ExpressionError as exc:
                problems.append((where, ref, exc.message))
        return bound, problems

    def references(self) -> list[tuple[str, GroupDefinition | None, Reference]]:
        """Every reference the workflow's steps, groups, variables and actions hold, with
        where it is written."""
        found: list[tuple[str, GroupDefinition | None, Reference]] = []

        def add(where: str, group: GroupDefinition | None, value: Any) -> None:
            found.extend((f"{where}{_suffix(p)}", group, r)
                         for p, r in find_references(value))

        add("workflow variables", None, dict(self.workflow.variables))
        add("environment", None, dict(self._environment))
        add("workflow actions", None, [dict(a) for a in (*self.workflow.on_success,
                                                         *self.workflow.on_failure)])
        for group in self.workflow.groups:
            add(f"group {group.name}", group, {"variables": dict(group.variables),
                                               "condition": group.condition,
                                               "actions": [dict(a) for a in (*group.on_success,
                                                                            *group.on_failure)]})
            for step in group.transfers:
                add(f"transfer {step.step_id}", group, step_templates(step))
        return found


def step_templates(step: TransferStep) -> dict[str, Any]:
    """The strings of a step that hold templates, by name."""
    return {
        "source": step.source.location, "destination": step.destination.location,
        "source options": dict(step.source.options),
        "destination options": dict(step.destination.options),
        "condition": step.condition,
    }


def process_context(workflow: WorkflowDefinition, *, started_at: float, execution_id: str,
                    environment: str | None, sets: Mapping[str, str],
                    file_roots: tuple[Path, ...] = (), base_dir: Path | None = None,
                    tenants: Mapping[str, Mapping[str, Any]] | None = None) -> RunContext:
    """A :class:`RunContext` reading this process's environment variables."""
    return RunContext(started_at=started_at, execution_id=execution_id, environment=environment,
                      sets=dict(sets), environ=dict(os.environ), file_roots=file_roots,
                      base_dir=base_dir, tenants=dict(tenants or {}))


def _walk(data: Mapping[str, Any], parts: tuple[str, ...], ref: Reference) -> Value:
    node: Any = data
    for i, part in enumerate(parts):
        if not isinstance(node, Mapping) or part not in node:
            known = sorted(node) if isinstance(node, Mapping) else []
            where = ".".join(ref.segments[: len(ref.segments) - len(parts) + i]) or ref.argument
            raise Unbound(f"{ref}: {where} has no {part!r}"
                          + (f" (it has {', '.join(map(str, known))})" if known else ""),
                          str(ref))
        node = node[part]
    if isinstance(node, Mapping | list):
        raise Unbound(f"{ref} is a {'map' if isinstance(node, Mapping) else 'list'}; refer to "
                      f"one of its values", str(ref))
    value: Value = node
    return value


def _suffix(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return f" {text.lstrip('.')}" if text else ""


def _shown(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


__all__ = ["Binder", "NotYet", "RunContext", "Unbound", "process_context", "step_templates"]
