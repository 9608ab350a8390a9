"""The pluggy plugin manager: hook specs from :mod:`quorus.core.hookspecs`, implementations
from the ``quorus.plugins`` entry-point group (minus disabled ones)."""

from __future__ import annotations

import logging
import os
import sys
import threading
from importlib import metadata

import pluggy
from quorus.core import hookspecs
from quorus.core.plugins import HOOKS, is_disabled

hookimpl = pluggy.HookimplMarker("quorus")

#: Set to any value to print every hook call and its result to stderr.
TRACE_ENV = "QUORUS_TRACE_HOOKS"

log = logging.getLogger(__name__)

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None


def new_plugin_manager(*, load_entry_points: bool = True) -> pluggy.PluginManager:
    """A plugin manager with Quorus's specs and, by default, the installed hook plugins.

    A hook plugin that fails to import is logged and skipped, so it cannot take the others
    down; ``quorus plugins`` shows it with the reason.
    """
    pm = pluggy.PluginManager("quorus")
    pm.add_hookspecs(hookspecs)
    if os.environ.get(TRACE_ENV):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    if load_entry_points:
        for ep in sorted(metadata.entry_points(group=HOOKS), key=lambda e: e.name):
            if is_disabled(HOOKS, ep.name) or pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                log.warning("hook plugin %r failed to load: %s", ep.name, exc)
                continue
            pm.register(plugin, name=ep.name)
    return pm


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created on first use."""
    global _manager
    with _lock:
        if _manager is None:
            _manager = new_plugin_manager()
        return _manager


__all__ = ["TRACE_ENV", "hookimpl", "new_plugin_manager", "plugin_manager"]
