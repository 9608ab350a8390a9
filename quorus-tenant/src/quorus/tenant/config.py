"""``TenantConfiguration`` YAML → :class:`~quorus.tenant.model.Tenant` records, and the checks
of a hierarchy: unknown parents, cycles, children listed under another parent, a child's quota
above its ancestor's.

A document describes a tenant (its id is ``metadata.name``, its parent
``spec.hierarchy.parent``, ``null`` for a root), unless its ``metadata.tenant`` names another
tenant: then it configures one namespace (``metadata.namespace``) of that tenant and may hold
only configuration blocks (``defaults``, ``security``, ``governance``, ``monitoring``,
``variables``), which override the tenant's for jobs in that namespace.

Everything here is deterministic: the state module calls :func:`parse_configuration` and
:func:`merge` again on every controller when a ``tenant-apply`` command is applied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from quorus.core.errors import ConfigurationError, QuorusError
from quorus.core.units import format_size, parse_size
from quorus.tenant.model import (
    CONFIGURATION_BLOCKS,
    QUOTA_NAMES,
    Allocation,
    Quotas,
    Tenant,
)

KIND = "TenantConfiguration"
_SIZE_QUOTAS = ("max_monthly_data_transfer", "max_file_size", "max_storage_usage")


class TenantConfigError(QuorusError):
    """Tenant configuration that cannot be applied, with every problem found; nothing of it
    was applied."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'' if count == 1 else 's'} in tenant configuration:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


@dataclass(frozen=True, slots=True)
class NamespaceSettings:
    """The configuration blocks of one namespace of a tenant (a namespace document)."""

    tenant: str
    namespace: str
    settings: Mapping[str, Any]
    where: str


@dataclass(frozen=True, slots=True)
class ParsedConfiguration:
    """The tenants and namespace settings of one or several YAML documents, in file order,
    and the tenants each document lists as children (checked by :func:`merge`)."""

    tenants: tuple[Tenant, ...]
    namespaces: tuple[NamespaceSettings, ...] = ()
    children: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    #: Settings the documents give that Quorus records but does not enforce, one line each.
    notices: tuple[str, ...] = ()


#: Settings of the design's TenantConfiguration that are kept (shown by ``tenant show`` and
#: ``effective-config``) but enforced nowhere: a user must not believe they are.
UNENFORCED: tuple[tuple[str, ...], ...] = (
    ("resources", "quotas", "maxRetentionDays"),
    ("resources", "quotas", "maxCpuCores"),
    ("resources", "quotas", "maxMemoryGB"),
    ("security", "networking", "allowedSourceCIDRs"),
    ("security", "networking", "requireVPN"),
    ("security", "networking", "allowCrossRegion"),
    ("security", "authentication"),
    ("security", "dataProtection"),
    ("governance", "compliance"),
)


def unenforced(spec: Mapping[str, Any]) -> list[str]:
    """The dotted paths of :data:`UNENFORCED` settings ``spec`` gives."""
    found = []
    for path in UNENFORCED:
        node: Any = spec
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if node is not None:
            found.append("spec." + ".".join(path))
    return found


def parse_configuration(text: str, file: str = "<tenants>") -> ParsedConfiguration:
    """The TenantConfiguration documents of YAML ``text``, validated against quorus-workflow's
    schema. Raises :class:`TenantConfigError` with every problem (file, line and column for
    schema problems)."""
    from quorus.workflow.documents import DefinitionError, load_text
    from quorus.workflow.validation import validate_documents

    try:
        documents = load_text(text, file)
    except DefinitionError as exc:
        raise TenantConfigError(str(i) for i in exc.issues) from None
    problems = [str(issue) for issue in validate_documents(documents)]
    if not documents:
        problems.append(f"{file}: no TenantConfiguration document")
    for document in documents:
        if document.kind != KIND:
            problems.append(f"{file}: document {document.index + 1} is a {document.kind}, "
                            f"not a {KIND}: apply workflows with quorus workflow submit")
    if problems:
        raise TenantConfigError(problems)
    tenants: list[Tenant] = []
    namespaces: list[NamespaceSettings] = []
    children: dict[str, tuple[str, ...]] = {}
    notices: list[str] = []
    for document in documents:
        where = f"{file}:{document.position(('metadata', 'name')).line}"
        body = document.body
        metadata: dict[str, Any] = body["metadata"]
        spec: dict[str, Any] = body["spec"]
        notices.extend(f"{where}: {metadata['name']}: {path} is recorded but not enforced"
                       for path in unenforced(spec))
        owner = metadata.get("tenant")
        if owner is not None and owner != metadata["name"]:
            namespaces.append(_namespace(metadata, spec, where, problems))
            continue
        try:
            tenants.append(_tenant(metadata, spec))
        except ConfigurationError as exc:
            problems.append(f"{where}: tenant {metadata['name']!r}: {exc}")
        listed = spec.get("hierarchy", {}).get("children")
        if listed:
            children[metadata["name"]] = tuple(listed)
    if problems:
        raise TenantConfigError(problems)
    return ParsedConfiguration(tuple(tenants), tuple(namespaces), children, tuple(notices))


def _namespace(metadata: dict[str, Any], spec: dict[str, Any], where: str,
               problems: list[str]) -> NamespaceSettings:
    owner, name = metadata["tenant"], metadata["name"]
    namespace = metadata.get("namespace")
    if namespace is None:
        problems.append(f"{where}: {name!r} configures a namespace of tenant {owner!r} "
                        "(metadata.tenant) but names none: add metadata.namespace")
    extra = sorted(set(spec) - set(CONFIGURATION_BLOCKS))
    if extra:
        problems.append(f"{where}: namespace {namespace!r} of tenant {owner!r} cannot set "
                        f"{', '.join('spec.' + e for e in extra)}: hierarchy and resources "
                        "belong to tenants (make it a child tenant to give it quotas)")
    return NamespaceSettings(owner, namespace or "", _blocks(spec), where)


def _blocks(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {block: spec[block] for block in CONFIGURATION_BLOCKS if block in spec}


def _tenant(metadata: dict[str, Any], spec: dict[str, Any]) -> Tenant:
    resources = spec.get("resources", {})
    written = resources.get("quotas", {})
    values: dict[str, Any] = {}
    for attribute, name in QUOTA_NAMES.items():
        if name not in written:
            continue
        value = written[name]
        values[attribute] = (parse_size(value, what=name) if attribute in _SIZE_QUOTAS
                             else value)
    allocation = resources.get("allocation", {})
    networking = spec.get("security", {}).get("networking", {})
    namespace = metadata.get("namespace")
    return Tenant(
        id=metadata["name"],
        parent=spec.get("hierarchy", {}).get("parent"),
        namespaces=(namespace,) if namespace else (),
        quotas=Quotas(**values),
        allowed_destinations=tuple(networking.get("allowedDestinations", ())),
        allocation=Allocation(allocation.get("strategy", "shared")),
        priority=allocation.get("priority"),
        labels={str(k): str(v) for k, v in metadata.get("labels", {}).items()},
        description=str(metadata.get("description", "")),
        settings=_blocks(spec),
    )


def merge(existing: Mapping[str, Tenant], parsed: ParsedConfiguration) -> dict[str, Tenant]:
    """The tenants after applying ``parsed`` over ``existing``: new tenants added, re-applied
    ones replaced (keeping their status and namespace settings), namespace settings set.
    Raises :class:`TenantConfigError` with every problem of the resulting hierarchy."""
    problems: list[str] = []
    merged = dict(existing)
    for tenant in parsed.tenants:
        old = merged.get(tenant.id)
        if old is not None:
            tenant = dataclasses.replace(tenant, status=old.status,
                                         namespace_settings=old.namespace_settings)
        merged[tenant.id] = _with_namespaces(tenant)
    seen: dict[tuple[str, str], str] = {}
    for item in parsed.namespaces:
        key = (item.tenant, item.namespace)
        if key in seen:
            problems.append(f"{item.where}: namespace {item.namespace!r} of tenant "
                            f"{item.tenant!r} is configured twice: here and at {seen[key]}")
            continue
        seen[key] = item.where
        owner = merged.get(item.tenant)
        if owner is None:
            problems.append(f"{item.where}: namespace {item.namespace!r} belongs to tenant "
                            f"{item.tenant!r}, which does not exist: apply its "
                            "TenantConfiguration first or in the same file")
            continue
        settings = {**owner.namespace_settings, item.namespace: item.settings}
        merged[owner.id] = _with_namespaces(dataclasses.replace(owner,
                                                                namespace_settings=settings))
    problems.extend(hierarchy_problems(merged, parsed.children))
    if problems:
        raise TenantConfigError(problems)
    return merged


def _with_namespaces(tenant: Tenant) -> Tenant:
    names = dict.fromkeys((*tenant.namespaces, *sorted(tenant.namespace_settings)))
    return dataclasses.replace(tenant, namespaces=tuple(names))


def hierarchy_problems(tenants: Mapping[str, Tenant],
                       children: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Every problem of the hierarchy ``tenants`` form, in a stable order: unknown parents,
    cycles (with the names in order), children listed under another parent, and quotas of a
    tenant above those of its nearest ancestor that sets the same quota."""
    problems: list[str] = []
    for tenant_id in sorted(tenants):
        parent = tenants[tenant_id].parent
        if parent is not None and parent not in tenants:
            problems.append(f"tenant {tenant_id!r}: parent {parent!r} does not exist: apply "
                            "the parent's TenantConfiguration first or in the same file")
    cycles = _cycles(tenants)
    problems.extend(f"tenants form a cycle: {' → '.join((*cycle, cycle[0]))}: a tenant cannot "
                    "be its own ancestor" for cycle in cycles)
    for parent_id, listed in sorted((children or {}).items()):
        for child in listed:
            found = tenants.get(child)
            if found is not None and found.parent != parent_id:
                problems.append(f"tenant {parent_id!r} lists {child!r} as a child, but "
                                f"{child!r} has parent {found.parent!r}: make them agree")
    if not cycles:
        for tenant_id in sorted(tenants):
            problems.extend(_quota_problems(tenants, tenants[tenant_id]))
    return problems


def _cycles(tenants: Mapping[str, Tenant]) -> list[tuple[str, ...]]:
    found: dict[tuple[str, ...], None] = {}
    for start in sorted(tenants):
        path: list[str] = []
        current: str | None = start
        while current is not None and current in tenants and current not in path:
            path.append(current)
            current = tenants[current].parent
        if current is not None and current in path:
            cycle = path[path.index(current):]
            turn = cycle.index(min(cycle))  # one spelling per cycle, whatever the start
            found[tuple(cycle[turn:] + cycle[:turn])] = None
    return list(found)


def ancestors(tenants: Mapping[str, Tenant], tenant_id: str) -> list[str]:
    """``tenant_id`` and its ancestors, nearest first (an acyclic hierarchy is assumed; a
    cycle stops the walk)."""
    chain: list[str] = []
    current: str | None = tenant_id
    while current is not None and current in tenants and current not in chain:
        chain.append(current)
        current = tenants[current].parent
    return chain


def _quota_problems(tenants: Mapping[str, Tenant], tenant: Tenant) -> list[str]:
    problems = []
    above = ancestors(tenants, tenant.id)[1:]
    for attribute, name in QUOTA_NAMES.items():
        mine = getattr(tenant.quotas, attribute)
        if mine is None:
            continue
        for ancestor_id in above:
            theirs = getattr(tenants[ancestor_id].quotas, attribute)
            if theirs is None:
                continue
            if mine > theirs:
                size = attribute in _SIZE_QUOTAS
                problems.append(
                    f"tenant {tenant.id!r}: quota {name} {_shown(mine, size)} is above "
                    f"{'its parent' if ancestor_id == tenant.parent else 'its ancestor'} "
                    f"{ancestor_id!r}'s {_shown(theirs, size)}: lower it to at most "
                    f"{theirs}")
            break
    return problems


def _shown(value: float, size: bool) -> str:
    return f"{value} bytes ({format_size(value)})" if size else str(value)


__all__ = [
    "KIND",
    "UNENFORCED",
    "NamespaceSettings",
    "ParsedConfiguration",
    "TenantConfigError",
    "ancestors",
    "hierarchy_problems",
    "merge",
    "parse_configuration",
    "unenforced",
]
