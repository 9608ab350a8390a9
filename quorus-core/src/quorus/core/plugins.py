"""Plugin discovery: entry-point groups loaded by name with stevedore.

Each kind of backend has one entry-point group (:data:`GROUPS`). Built-in backends register
through the same entry points as third-party ones. A plugin that fails to import is recorded,
not raised, unless it is the one asked for; ``QUORUS_DISABLE_PLUGINS`` (comma-separated
``name`` or ``group:name``) turns plugins off.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from importlib.metadata import EntryPoint
from typing import Any

from quorus.core.errors import PluginError, PluginNotFoundError
from stevedore import NamedExtensionManager

PROTOCOLS = "quorus.protocols"
CONSENSUS = "quorus.consensus"
STORAGE = "quorus.storage"
AUTH = "quorus.auth"
HOOKS = "quorus.plugins"

#: Every entry-point group Quorus reads, with what a plugin in it provides.
GROUPS: dict[str, str] = {
    PROTOCOLS: "transfer protocols, named by URI scheme",
    CONSENSUS: "consensus backends that replicate the controller state machine",
    STORAGE: "durable stores for the controller's log, term, vote and snapshots",
    AUTH: "authentication methods for clients, agents and peers",
    HOOKS: "pluggy hook implementations (lifecycle events, metrics, state modules)",
}

_KIND = {
    PROTOCOLS: "protocol",
    CONSENSUS: "consensus backend",
    STORAGE: "storage backend",
    AUTH: "auth method",
    HOOKS: "hook plugin",
}

#: The Quorus distribution that provides a well-known plugin, for install hints.
KNOWN_DISTRIBUTIONS: dict[tuple[str, str], str] = {
    (PROTOCOLS, "http"): "quorus-http",
    (PROTOCOLS, "https"): "quorus-http",
    (PROTOCOLS, "sftp"): "quorus-sftp",
    (PROTOCOLS, "ftp"): "quorus-ftp",
    (PROTOCOLS, "ftps"): "quorus-ftp",
    (PROTOCOLS, "smb"): "quorus-smb",
    (CONSENSUS, "raft"): "quorus-raft",
    (AUTH, "mtls"): "quorus-tenant",
}

DISABLE_ENV = "QUORUS_DISABLE_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    """One installed plugin as ``quorus plugins`` shows it."""

    group: str
    name: str
    target: str
    distribution: str | None
    version: str | None
    status: str  # "loaded", "failed" or "disabled"
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "name": self.name,
            "target": self.target,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
        }


def disabled_plugins() -> frozenset[str]:
    """Names from ``QUORUS_DISABLE_PLUGINS`` (``name`` or ``group:name``)."""
    raw = os.environ.get(DISABLE_ENV, "")
    return frozenset(item.strip() for item in raw.split(",") if item.strip())


def is_disabled(group: str, name: str, disabled: Iterable[str] | None = None) -> bool:
    names = disabled_plugins() if disabled is None else frozenset(disabled)
    return name in names or f"{group}:{name}" in names


def _dist(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = ep.dist
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _distribution_of(group: str, ep: EntryPoint) -> tuple[str | None, str | None]:
    """The distribution that declares ``ep``. stevedore's cached entry points carry no
    distribution, so look the entry point up in the installed metadata."""
    if ep.dist is not None:
        return _dist(ep)
    for candidate in metadata.entry_points(group=group, name=ep.name):
        if candidate.value == ep.value:
            return _dist(candidate)
    return None, None


def _ignore_missing(_names: object) -> None:
    """Missing names are reported by :meth:`PluginRegistry.load` with an install hint."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PluginRegistry:
    """Loads plugins by group and name and remembers what failed.

    Loaded objects are cached per (group, name); the cache is process-wide through
    :func:`registry`, and tests may build their own instance.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, str], Any] = {}

    def load(self, group: str, name: str) -> Any:
        """The object registered as ``name`` in ``group``.

        Raises :class:`PluginNotFoundError` with an install hint when nothing provides it,
        and :class:`PluginError` with the reason when it is installed but fails to import
        or is disabled.
        """
        key = (group, name)
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
        kind = _KIND.get(group, "plugin")
        if is_disabled(group, name):
            raise PluginError(f"{kind} {name!r} is disabled by {DISABLE_ENV}")
        failures: list[str] = []

        def on_failure(_manager: object, ep: EntryPoint, exc: BaseException) -> None:
            dist, version = _distribution_of(group, ep)
            origin = f"{dist} {version}" if dist else ep.value
            failures.append(f"{kind} {name!r} from {origin} failed to load: {_describe(exc)}")

        manager: NamedExtensionManager[Any] = NamedExtensionManager(
            group,
            names=[name],
            on_load_failure_callback=on_failure,
            name_order=True,
            on_missing_entrypoints_callback=_ignore_missing,
        )
        extensions = [ext for ext in manager.extensions if ext.name == name]
        if extensions:
            obj = extensions[0].plugin
            with self._lock:
                self._loaded[key] = obj
            return obj
        if failures:
            raise PluginError(failures[0])
        raise PluginNotFoundError(group, name, missing_hint(group, name))

    def names(self, group: str) -> list[str]:
        """Names of the enabled plugins in ``group`` that load."""
        return sorted({info.name for info in self.describe([group]) if info.status == "loaded"})

    def describe(self, groups: Iterable[str] = GROUPS) -> list[PluginInfo]:
        """Every installed plugin in ``groups``: loaded, failed (with the reason) or disabled.

        Disabled plugins are listed but never imported.
        """
        disabled = disabled_plugins()
        infos: list[PluginInfo] = []
        for group in groups:
            entry_points = sorted(metadata.entry_points(group=group), key=lambda ep: ep.name)
            enabled = [ep.name for ep in entry_points if not is_disabled(group, ep.name, disabled)]
            failed: dict[str, str] = {}

            def on_failure(
                _manager: object, ep: EntryPoint, exc: BaseException, _failed: dict[str, str] = failed
            ) -> None:
                _failed[ep.name] = _describe(exc)

            loaded: set[str] = set()
            if enabled:
                manager: NamedExtensionManager[Any] = NamedExtensionManager(
                    group,
                    names=enabled,
                    on_load_failure_callback=on_failure,
                    on_missing_entrypoints_callback=_ignore_missing,
                )
                loaded = {ext.name for ext in manager.extensions}
            for ep in entry_points:
                dist, version = _dist(ep)
                if ep.name not in enabled:
                    status, error = "disabled", f"disabled by {DISABLE_ENV}"
                elif ep.name in loaded:
                    status, error = "loaded", None
                else:
                    status, error = "failed", failed.get(ep.name, "did not load")
                infos.append(PluginInfo(group, ep.name, ep.value, dist, version, status, error))
        return infos


def missing_hint(group: str, name: str) -> str:
    """The message for a plugin that is not installed, naming what to install."""
    kind = _KIND.get(group, "plugin")
    what = "protocol for scheme" if group == PROTOCOLS else f"{kind} named"
    dist = KNOWN_DISTRIBUTIONS.get((group, name))
    if dist:
        return f"no {what} {name!r}: pip install {dist}"
    return (
        f"no {what} {name!r}: install a distribution that registers {name!r} "
        f"in the {group!r} entry-point group (see 'quorus plugins')"
    )


_registry = PluginRegistry()


def registry() -> PluginRegistry:
    """The process-wide plugin registry."""
    return _registry


__all__ = [
    "AUTH",
    "CONSENSUS",
    "DISABLE_ENV",
    "GROUPS",
    "HOOKS",
    "PROTOCOLS",
    "STORAGE",
    "PluginInfo",
    "PluginRegistry",
    "disabled_plugins",
    "missing_hint",
    "registry",
]
