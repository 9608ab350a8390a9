"""The definitions every kind normalises into: a :class:`WorkflowDefinition` of
:class:`GroupDefinition` s of :class:`TransferStep` s.

A ``Transfer`` document becomes a workflow of one group holding one transfer, a
``TransferGroup`` a workflow of one group, and a ``TransferWorkflow`` keeps its groups, whose
transfers are inline or a reference to a ``TransferGroup`` defined in any file given. Strings
stay templates here (``${...}`` is bound later, at run time); units are parsed here.
:func:`build_definitions` works on documents that passed schema validation and reports what
the schema cannot see (references to groups that do not exist, units out of range) as
:class:`~quorus.workflow.documents.Issue` s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from quorus.core.errors import ConfigurationError
from quorus.core.units import parse_duration, parse_rate, parse_size
from quorus.workflow.documents import DefinitionError, Document, Issue
from quorus.workflow.notices import Notice, step_notices, workflow_notices

DEFAULT_TENANT = "default"
DEFAULT_NAMESPACE = "default"
STRATEGIES = ("sequential", "parallel", "mixed")


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """A ``retry`` block; ``None`` fields are inherited from the level above when merged."""

    max_attempts: int | None = None
    backoff: str | None = None
    initial_delay: float | None = None
    max_delay: float | None = None

    def over(self, base: RetrySettings) -> RetrySettings:
        """These settings, with every unset field taken from ``base``."""
        return RetrySettings(
            self.max_attempts if self.max_attempts is not None else base.max_attempts,
            self.backoff if self.backoff is not None else base.backoff,
            self.initial_delay if self.initial_delay is not None else base.initial_delay,
            self.max_delay if self.max_delay is not None else base.max_delay,
        )

    def to_json(self) -> dict[str, Any]:
        return {"maxAttempts": self.max_attempts, "backoff": self.backoff,
                "initialDelay": self.initial_delay, "maxDelay": self.max_delay}


#: The global defaults every workflow's retry settings are merged over.
GLOBAL_RETRY = RetrySettings(max_attempts=3, backoff="exponential", initial_delay=1.0,
                             max_delay=30.0)


@dataclass(frozen=True, slots=True)
class ValidationSettings:
    """A ``validation`` block: size bounds, checksum (``sha256:hex``) and ``dataQuality`` (for
    :mod:`~quorus.workflow.notices` only). Like :class:`RetrySettings`, ``None`` fields are
    inherited from the level above when merged (workflow ``defaults`` → group ``defaults`` →
    the transfer's own), and ``dataQuality`` key by key."""

    size_min: int | None = None
    size_max: int | None = None
    checksum: str | None = None
    data_quality: Mapping[str, Any] = field(default_factory=dict)

    def over(self, base: ValidationSettings) -> ValidationSettings:
        """These settings, with every unset field taken from ``base``."""
        return ValidationSettings(
            self.size_min if self.size_min is not None else base.size_min,
            self.size_max if self.size_max is not None else base.size_max,
            self.checksum if self.checksum is not None else base.checksum,
            {**base.data_quality, **self.data_quality},
        )


#: What a transfer checks when neither it nor a ``defaults`` block says anything.
NO_VALIDATION = ValidationSettings()


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a definition was written: file and path inside its document, for messages."""

    file: str
    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path}" if self.path else where


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A source or destination as written: ``location`` is the ``uri`` or ``path`` template;
    ``options`` holds what the protocol gets (headers, authentication, protocol options)."""

    location: str
    is_path: bool
    protocol: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    create_directories: bool | None = None
    permissions: str | None = None


@dataclass(frozen=True, slots=True)
class TransferStep:
    """One transfer of a group. ``step_id`` is ``group/name``; ``depends_on`` names other
    transfers of the same group."""

    name: str
    group: str
    source: Endpoint
    destination: Endpoint
    origin: Origin
    depends_on: tuple[str, ...] = ()
    condition: str | None = None
    retry: RetrySettings = field(default_factory=RetrySettings)
    timeout: float | None = None
    expected_size: int | None = None
    size_min: int | None = None
    size_max: int | None = None
    checksum: str | None = None
    priority: int = 0
    bandwidth: int | None = None
    streams: int | None = None
    overwrite: bool | None = None
    #: What the spec asks for that cannot be done here (see :mod:`quorus.workflow.notices`).
    notices: tuple[Notice, ...] = ()

    @property
    def step_id(self) -> str:
        return f"{self.group}/{self.name}"


@dataclass(frozen=True, slots=True)
class GroupDefinition:
    """A group of transfers with its execution settings; ``depends_on`` names other groups."""

    name: str
    transfers: tuple[TransferStep, ...]
    origin: Origin
    tenant: str = DEFAULT_TENANT
    namespace: str = DEFAULT_NAMESPACE
    depends_on: tuple[str, ...] = ()
    condition: str | None = None
    strategy: str = "sequential"
    max_concurrency: int = 1
    timeout: float | None = None
    continue_on_error: bool = False
    variables: Mapping[str, Any] = field(default_factory=dict)
    on_success: tuple[Mapping[str, Any], ...] = ()
    on_failure: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Trigger:
    """When the quorum starts the workflow by itself."""

    name: str
    type: str
    schedule: str | None = None
    timezone: str = "UTC"
    path: str | None = None
    action: str = "create"
    missed_fires: str = "once"
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    """What runs: groups in dependency order, with the workflow-wide settings."""

    name: str
    kind: str
    groups: tuple[GroupDefinition, ...]
    origin: Origin
    tenant: str = DEFAULT_TENANT
    namespace: str = DEFAULT_NAMESPACE
    metadata: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    environments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    parallelism: int | None = None
    timeout: float | None = None
    timezone: str = "UTC"
    triggers: tuple[Trigger, ...] = ()
    on_success: tuple[Mapping[str, Any], ...] = ()
    on_failure: tuple[Mapping[str, Any], ...] = ()
    checks: tuple[Mapping[str, Any], ...] = ()
    tenants: tuple[Mapping[str, Any], ...] = ()
    notices: tuple[Notice, ...] = ()
    #: ``spec.execution.dryRun`` / ``virtualRun``: the definition asks to be run that way.
    dry_run: bool = False
    virtual_run: bool = False
    #: ``spec.execution.crossTenantAllowed``: the author means its groups to cross tenants.
    cross_tenant_allowed: bool = False
    #: ``spec.security.dataSharing.agreements``: the data-sharing agreements it runs under.
    agreements: tuple[str, ...] = ()

    @property
    def tenant_roles(self) -> tuple[tuple[str, str], ...]:
        """``(tenant, role)`` for each entry of ``spec.tenants`` (role ``both`` when it
        gives none)."""
        return tuple((str(t.get("name", "")), str(t.get("role", "both")))
                     for t in self.tenants if t.get("name"))

    def all_notices(self) -> list[tuple[str, Notice]]:
        """Every notice with where it applies (``workflow`` or a step id)."""
        found = [("workflow", n) for n in self.notices]
        found += [(s.step_id, n) for s in self.steps for n in s.notices]
        return found

    @property
    def steps(self) -> tuple[TransferStep, ...]:
        return tuple(t for g in self.groups for t in g.transfers)

    def group(self, name: str) -> GroupDefinition:
        return next(g for g in self.groups if g.name == name)


@dataclass(frozen=True, slots=True)
class Definitions:
    """Everything a set of documents defines, by kind and name."""

    workflows: Mapping[str, WorkflowDefinition]
    tenants: Mapping[str, Mapping[str, Any]]
    documents: tuple[Document, ...]

    def select(self, name: str | None = None) -> WorkflowDefinition:
        """The workflow to run: ``name``, or the only ``TransferWorkflow``, or the only
        definition. Raises :class:`ConfigurationError` naming the choices otherwise."""
        if name is not None:
            if name not in self.workflows:
                raise ConfigurationError(
                    f"no workflow, group or transfer named {name!r}; defined: "
                    f"{', '.join(sorted(self.workflows)) or 'none'}")
            return self.workflows[name]
        workflows = [w for w in self.workflows.values() if w.kind == "TransferWorkflow"]
        if len(workflows) == 1:
            return workflows[0]
        if len(self.workflows) == 1:
            return next(iter(self.workflows.values()))
        if not self.workflows:
            raise ConfigurationError("the files define no Transfer, TransferGroup or "
                                     "TransferWorkflow to run")
        raise ConfigurationError(
            "the files define several runnable definitions; choose one with --name: "
            + ", ".join(sorted(self.workflows)))


# -- building -----------------------------------------------------------------------------------


class _Builder:
    def __init__(self, documents: Sequence[Document]) -> None:
        self.documents = documents
        self.issues: list[Issue] = []
        self.doc: Document = documents[0] if documents else None  # type: ignore[assignment]
        self.group_documents = {str(d.name): d for d in documents if d.kind == "TransferGroup"}

    def issue(self, path: tuple[str | int, ...], message: str, hint: str | None = None) -> None:
        pos = self.doc.position(path)
        self.issues.append(Issue(self.doc.file, pos.line, pos.column, _path_text(path),
                                 message, hint))

    def origin(self, path: tuple[str | int, ...]) -> Origin:
        pos = self.doc.position(path)
        return Origin(self.doc.file, _path_text(path), pos.line, pos.column)

    def unit(self, parse: Any, value: Any, path: tuple[str | int, ...], what: str) -> Any:
        if value is None:
            return None
        try:
            return parse(value, what=what)
        except (ConfigurationError, ValueError) as exc:
            self.issue(path, str(exc))
            return None

    # -- pieces -----------------------------------------------------------------------------

    def validation(self, block: Mapping[str, Any] | None,
                   path: tuple[str | int, ...]) -> ValidationSettings:
        if not block:
            return ValidationSettings()
        size = block.get("expectedSize") or {}
        checksum = (block.get("checksum") or {}).get("value")
        return ValidationSettings(
            size_min=self.unit(parse_size, size.get("min"), (*path, "expectedSize", "min"),
                               "min"),
            size_max=self.unit(parse_size, size.get("max"), (*path, "expectedSize", "max"),
                               "max"),
            checksum=f"sha256:{str(checksum).lower()}" if checksum else None,
            data_quality=dict(block.get("dataQuality") or {}),
        )

    def retry(self, block: Mapping[str, Any] | None, path: tuple[str | int, ...]) -> RetrySettings:
        if not block:
            return RetrySettings()
        return RetrySettings(
            max_attempts=block.get("maxAttempts"),
            backoff=block.get("backoff"),
            initial_delay=self.unit(parse_duration, block.get("initialDelay"),
                                    (*path, "initialDelay"), "initialDelay"),
            max_delay=self.unit(parse_duration, block.get("maxDelay"), (*path, "maxDelay"),
                                "maxDelay"),
        )

    def endpoint(self, block: Mapping[str, Any], path: tuple[str | int, ...]) -> Endpoint:
        is_path = "uri" not in block
        location = str(block.get("uri") if not is_path else block.get("path", ""))
        options: dict[str, Any] = dict(block.get("options") or {})
        if block.get("headers"):
            options["headers"] = dict(block["headers"])
        if block.get("authentication"):
            options["authentication"] = dict(block["authentication"])
        if block.get("timeout") is not None:
            options["timeout"] = self.unit(parse_duration, block["timeout"], (*path, "timeout"),
                                           "timeout")
        return Endpoint(location=location, is_path=is_path, protocol=block.get("protocol"),
                        options=options, create_directories=block.get("createDirectories"),
                        permissions=_text(block.get("permissions")))

    def transfer(self, spec: Mapping[str, Any], name: str, group: str,
                 path: tuple[str | int, ...], retry_base: RetrySettings,
                 timeout_default: float | None,
                 validation_base: ValidationSettings = NO_VALIDATION) -> TransferStep:
        validation = self.validation(spec.get("validation"),
                                     (*path, "validation")).over(validation_base)
        expected_size = self.unit(parse_size, spec.get("expectedSize"), (*path, "expectedSize"),
                                  "expectedSize")
        self.check_sizes(expected_size, validation, path)
        return TransferStep(
            name=name, group=group,
            source=self.endpoint(spec.get("source") or {}, (*path, "source")),
            destination=self.endpoint(spec.get("destination") or {}, (*path, "destination")),
            origin=self.origin(path),
            depends_on=tuple(spec.get("dependsOn") or ()),
            condition=spec.get("condition"),
            retry=self.retry(spec.get("retry"), (*path, "retry")).over(retry_base),
            timeout=self.unit(parse_duration, spec.get("timeout"), (*path, "timeout"),
                              "timeout") or timeout_default,
            expected_size=expected_size,
            size_min=validation.size_min,
            size_max=validation.size_max,
            checksum=validation.checksum,
            priority=int(spec.get("priority", 0)),
            bandwidth=self.unit(parse_rate, spec.get("bandwidth"), (*path, "bandwidth"),
                                "bandwidth"),
            streams=spec.get("streams"),
            overwrite=spec.get("overwrite"),
            # The effective dataQuality, defaults included, is what the notices judge.
            notices=step_notices({**spec, "validation": {
                "dataQuality": validation.data_quality}}),
        )

    def check_sizes(self, exact: int | None, validation: ValidationSettings,
                    path: tuple[str | int, ...]) -> None:
        """No file can pass bounds that contradict each other (once defaults are merged)."""
        low, high = validation.size_min, validation.size_max
        if low is not None and high is not None and low > high:
            self.issue((*path, "validation", "expectedSize"),
                       f"the minimum size ({low} bytes) exceeds the maximum ({high} bytes), "
                       "defaults included")
        elif exact is not None and ((low is not None and exact < low)
                                    or (high is not None and exact > high)):
            self.issue((*path, "expectedSize"),
                       f"expectedSize ({exact} bytes) is outside validation.expectedSize "
                       f"({'' if low is None else low}..{'' if high is None else high} bytes), "
                       "defaults included")

    def group(self, name: str, spec: Mapping[str, Any], path: tuple[str | int, ...], *,
              tenant: str, namespace: str, retry_base: RetrySettings,
              depends_on: tuple[str, ...] = (), condition: str | None = None,
              variables: Mapping[str, Any] | None = None,
              inherited: Mapping[str, Any] | None = None,
              validation_base: ValidationSettings = NO_VALIDATION) -> GroupDefinition:
        # A workflow's strategy, continueOnError and default timeout apply to groups that do
        # not set their own.
        execution = {**(inherited or {}), **(spec.get("execution") or {})}
        defaults = spec.get("defaults") or {}
        retry = self.retry(defaults.get("retry"), (*path, "defaults", "retry")).over(retry_base)
        validation = self.validation(defaults.get("validation"),
                                     (*path, "defaults", "validation")).over(validation_base)
        step_timeout = self.unit(parse_duration, defaults.get("timeout"),
                                 (*path, "defaults", "timeout"), "timeout")
        if step_timeout is None and inherited:
            step_timeout = inherited.get("stepTimeout")
        transfers = tuple(
            self.transfer(t, t.get("name", f"transfer-{i + 1}"), name,
                          (*path, "transfers", i), retry, step_timeout, validation)
            for i, t in enumerate(spec.get("transfers") or ())
        )
        strategy = execution.get("strategy", "sequential")
        merged_variables = dict(spec.get("variables") or {})
        merged_variables.update(variables or {})
        return GroupDefinition(
            name=name, transfers=transfers, origin=self.origin(path), tenant=tenant,
            namespace=namespace, depends_on=depends_on, condition=condition,
            strategy=strategy,
            max_concurrency=int(execution.get("maxConcurrency",
                                              1 if strategy == "sequential" else 4)),
            timeout=self.unit(parse_duration, execution.get("timeout"),
                              (*path, "execution", "timeout"), "timeout"),
            continue_on_error=bool(execution.get("continueOnError", False)),
            variables=merged_variables,
            on_success=tuple(spec.get("onSuccess") or ()),
            on_failure=tuple(spec.get("onFailure") or ()),
        )

    # -- kinds ------------------------------------------------------------------------------

    def build(self, doc: Document) -> WorkflowDefinition | None:
        self.doc = doc
        body = doc.body
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        name = str(meta.get("name", ""))
        tenant = str(meta.get("tenant", DEFAULT_TENANT))
        namespace = str(meta.get("namespace", DEFAULT_NAMESPACE))
        common: dict[str, Any] = {"name": name, "kind": doc.kind or "", "origin": self.origin(()),
                                  "tenant": tenant, "namespace": namespace, "metadata": meta}
        if doc.kind == "Transfer":
            group = GroupDefinition(
                name=name, origin=self.origin(("spec",)), tenant=tenant, namespace=namespace,
                transfers=(self.transfer(spec, name, name, ("spec",), GLOBAL_RETRY, None),))
            return WorkflowDefinition(groups=(group,), **common)
        if doc.kind == "TransferGroup":
            group = self.group(name, spec, ("spec",), tenant=tenant, namespace=namespace,
                               retry_base=GLOBAL_RETRY)
            # The group's variables and actions are the workflow's: there is nothing above.
            return WorkflowDefinition(
                groups=(replace(group, on_success=(), on_failure=(), variables={}),),
                on_success=group.on_success, on_failure=group.on_failure,
                variables=group.variables, **common)
        if doc.kind == "TransferWorkflow":
            return self.workflow(doc, spec, common)
        return None

    def workflow(self, doc: Document, spec: Mapping[str, Any],
                 common: dict[str, Any]) -> WorkflowDefinition:
        execution = spec.get("execution") or {}
        defaults = spec.get("defaults") or {}
        retry = self.retry(defaults.get("retry"), ("spec", "defaults", "retry")).over(GLOBAL_RETRY)
        validation = self.validation(defaults.get("validation"),
                                     ("spec", "defaults", "validation"))
        inherited: dict[str, Any] = {k: execution[k] for k in ("strategy", "continueOnError")
                                     if k in execution}
        inherited["stepTimeout"] = self.unit(parse_duration, defaults.get("timeout"),
                                             ("spec", "defaults", "timeout"), "timeout")
        groups: list[GroupDefinition] = []
        for i, entry in enumerate(spec.get("groups") or ()):
            path: tuple[str | int, ...] = ("spec", "groups", i)
            holder = entry.get("transferGroup") or {}
            group_spec: Mapping[str, Any] | None = holder.get("spec")
            group_path: tuple[str | int, ...] = (*path, "transferGroup", "spec")
            if "ref" in holder:
                referenced = self.group_documents.get(holder["ref"])
                if referenced is None:
                    self.issue((*path, "transferGroup", "ref"),
                               f"no TransferGroup named {holder['ref']!r} in the files given",
                               _close(holder["ref"], self.group_documents))
                    continue
                group_spec, group_path = referenced.body.get("spec") or {}, ("spec",)
                self.doc = referenced
            group = self.group(
                entry["name"], group_spec or {}, group_path,
                tenant=str(entry.get("tenant", common["tenant"])),
                namespace=str(entry.get("namespace", common["namespace"])),
                retry_base=retry, depends_on=tuple(entry.get("dependsOn") or ()),
                condition=entry.get("condition"), variables=entry.get("variables"),
                inherited=inherited, validation_base=validation)
            self.doc = doc
            groups.append(replace(group, origin=self.origin(path)))
        triggers = tuple(
            Trigger(name=t["name"], type=t["type"], schedule=t.get("schedule"),
                    timezone=t.get("timezone", spec.get("timezone", "UTC")), path=t.get("path"),
                    action=t.get("action", "create"), missed_fires=t.get("missedFires", "once"),
                    enabled=t.get("enabled", True))
            for t in spec.get("triggers") or ())
        return WorkflowDefinition(
            groups=tuple(groups), variables=dict(spec.get("variables") or {}),
            environments={k: dict(v or {}) for k, v in (spec.get("environments") or {}).items()},
            parallelism=execution.get("parallelism"),
            timeout=self.unit(parse_duration, execution.get("timeout"),
                              ("spec", "execution", "timeout"), "timeout"),
            timezone=spec.get("timezone", "UTC"), triggers=triggers,
            on_success=tuple(spec.get("onSuccess") or ()),
            on_failure=tuple(spec.get("onFailure") or ()),
            checks=tuple(spec.get("validation") or ()),
            tenants=tuple(spec.get("tenants") or ()), notices=workflow_notices(spec),
            dry_run=bool(execution.get("dryRun", False)),
            virtual_run=bool(execution.get("virtualRun", False)),
            cross_tenant_allowed=bool(execution.get("crossTenantAllowed", False)),
            agreements=tuple(str(a) for a in (
                ((spec.get("security") or {}).get("dataSharing") or {}).get("agreements")
                or ())),
            **common)


def build_definitions(documents: Sequence[Document]) -> Definitions:
    """Normalise validated documents; raises :class:`DefinitionError` with every problem."""
    builder = _Builder(documents)
    workflows: dict[str, WorkflowDefinition] = {}
    tenants: dict[str, Mapping[str, Any]] = {}
    for doc in documents:
        if doc.kind == "TenantConfiguration":
            tenants[str(doc.name)] = doc.body
            continue
        definition = builder.build(doc)
        if definition is not None:
            workflows.setdefault(definition.name, definition)
    if builder.issues:
        raise DefinitionError(tuple(sorted(builder.issues)))
    return Definitions(workflows, tenants, tuple(documents))


def _path_text(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _close(name: str, choices: Mapping[str, Any]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, list(choices), n=1)
    # The hint is the bare name: Issue adds "did you mean ...?" when it is shown.
    return found[0] if found else None
