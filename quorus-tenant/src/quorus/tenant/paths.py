"""Storage isolation for tenants: a tenant's paths and locations must resolve inside its
allowed roots (``allowedDestinations``, else ``/data/tenants/<id>``).

The checks themselves are quorus-core's (:mod:`quorus.core.confine`), because the agent
applies them too, before any byte is written, and core does not import this package: the
controller checks lexically at admission, the leader sends the tenant's roots with each
assignment, and the agent's ``file`` protocol walks to every local file without following
a symbolic link. This module adds what is the tenant's own: the default root.
"""

from __future__ import annotations

import functools

from quorus.core.confine import (
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    Confinement,
    DestinationDirectory,
    PathOutsideRootsError,
    StoragePathError,
    UnsafePathError,
    check_local_destination,
    location_inside,
    normalise_location,
    normalise_path,
    open_destination_safely,
    resolve_inside,
    tree_patterns,
)

#: A tenant's storage root when its configuration (and its ancestors') names none.
DEFAULT_ROOT_TEMPLATE = "/data/tenants/{tenant}"


@functools.lru_cache(maxsize=4096)
def default_roots(tenant: str, template: str = DEFAULT_ROOT_TEMPLATE) -> tuple[str, ...]:
    """The roots of a tenant that names none: ``/data/tenants/<tenant>`` by default."""
    return (normalise_path(template.format(tenant=tenant)),)


__all__ = [
    "DEFAULT_ROOT_TEMPLATE",
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "Confinement",
    "DestinationDirectory",
    "PathOutsideRootsError",
    "StoragePathError",
    "UnsafePathError",
    "check_local_destination",
    "default_roots",
    "location_inside",
    "normalise_location",
    "normalise_path",
    "open_destination_safely",
    "resolve_inside",
    "tree_patterns",
]
