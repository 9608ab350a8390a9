"""Quorus tenancy: tenants in a hierarchy with namespaces, their quotas enforced inside the
controller's replicated state, usage and cost reports, dedicated agents.

The public names are re-exported here lazily, so that importing the package (every Quorus
process loads its hook plugin) costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quorus.tenant.config import TenantConfigError, merge, parse_configuration
    from quorus.tenant.effective import EffectiveValue, effective_config
    from quorus.tenant.model import Quotas, Tenant, TenantStatus
    from quorus.tenant.quotas import Usage
    from quorus.tenant.routes import TenantExtension
    from quorus.tenant.state import TenantStateModule

_WHERE = {
    "EffectiveValue": "effective",
    "Quotas": "model",
    "Tenant": "model",
    "TenantConfigError": "config",
    "TenantExtension": "routes",
    "TenantStateModule": "state",
    "TenantStatus": "model",
    "Usage": "quotas",
    "effective_config": "effective",
    "merge": "config",
    "parse_configuration": "config",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'quorus.tenant' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"quorus.tenant.{module}"), name)


__all__ = [
    "EffectiveValue",
    "Quotas",
    "Tenant",
    "TenantConfigError",
    "TenantExtension",
    "TenantStateModule",
    "TenantStatus",
    "Usage",
    "effective_config",
    "merge",
    "parse_configuration",
]
