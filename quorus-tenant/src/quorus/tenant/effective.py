"""A tenant's effective configuration: the global defaults, then each ancestor from the root
down, then the tenant, then one of its namespaces, merged key by key, each leaf value with where
it came from (``global``, ``tenant acme-corp``, ``namespace finance``).

Maps merge recursively; any other value (text, numbers, lists) is a leaf that replaces the one
before it whole. Keys are dotted spec paths (``defaults.retry.maxAttempts``) in sorted order,
so the same tenants always give the same answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from quorus.tenant.config import ancestors
from quorus.tenant.model import DEFAULT_NAMESPACE, Tenant

#: What applies where no tenant says otherwise (the values the workflow runner and the agents
#: use without tenancy).
GLOBAL_DEFAULTS: Mapping[str, Any] = {
    "defaults": {
        "retry": {"maxAttempts": 3, "backoff": "exponential", "initialDelay": "1s"},
        "validation": {"checksumRequired": False, "sizeValidation": True},
        "monitoring": {"progressReporting": True, "metricsEnabled": True},
    },
    "security": {
        "dataProtection": {"encryptionInTransit": False, "encryptionAtRest": False},
    },
    "governance": {"audit": {"enabled": True}},
    "monitoring": {"metrics": {"enabled": True}},
}

GLOBAL = "global"


@dataclass(frozen=True, slots=True)
class EffectiveValue:
    """One leaf of the effective configuration and the layer that set it."""

    path: str
    value: Any
    source: str

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "value": self.value, "source": self.source}


class UnknownScope(LookupError):
    """The tenant or namespace asked for does not exist; the message says what does."""


def _leaves(block: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key in sorted(block):
        value = block[key]
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):  # an empty map sets nothing
            yield from _leaves(value, path)
        else:
            yield path, value


def _apply(layer: Mapping[str, Any], source: str, into: dict[str, EffectiveValue]) -> None:
    for path, value in _leaves(layer):
        # A leaf replaces a map that an earlier layer had at the same path, and the reverse.
        for known in [p for p in into if p.startswith(path + ".") or path.startswith(p + ".")]:
            del into[known]
        into[path] = EffectiveValue(path, value, source)


def effective_config(tenants: Mapping[str, Tenant], tenant_id: str,
                     namespace: str | None = None) -> tuple[EffectiveValue, ...]:
    """The merged configuration of ``tenant_id`` (in ``namespace``), sorted by path. Raises
    :class:`UnknownScope` for a tenant or namespace that is not configured (the ``default``
    tenant and namespace always exist: the global defaults alone)."""
    layers: list[tuple[str, Mapping[str, Any]]] = [(GLOBAL, GLOBAL_DEFAULTS)]
    if tenant_id in tenants:
        for ancestor in reversed(ancestors(tenants, tenant_id)):
            layers.append((f"tenant {ancestor}", tenants[ancestor].settings))
        tenant = tenants[tenant_id]
        if namespace is not None and namespace != DEFAULT_NAMESPACE:
            if namespace not in tenant.namespaces:
                known = ", ".join(tenant.namespaces) or "none besides default"
                raise UnknownScope(f"tenant {tenant_id!r} has no namespace {namespace!r} "
                                   f"(its namespaces: {known})")
            layers.append((f"namespace {namespace}",
                           tenant.namespace_settings.get(namespace, {})))
    elif tenant_id != "default":
        raise UnknownScope(f"no tenant {tenant_id!r}: apply its TenantConfiguration "
                           "(quorus tenant apply FILE)")
    merged: dict[str, EffectiveValue] = {}
    for source, layer in layers:
        _apply(layer, source, merged)
    return tuple(merged[p] for p in sorted(merged))


__all__ = ["GLOBAL", "GLOBAL_DEFAULTS", "EffectiveValue", "UnknownScope", "effective_config"]
