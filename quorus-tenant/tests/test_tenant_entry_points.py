"""The distribution's entry points resolve: the hook plugin (state module, controller extension,
``quorus tenant`` commands) and the ``mtls`` auth method."""

from __future__ import annotations

from importlib import metadata

from quorus.core.hooks import new_plugin_manager
from quorus.core.plugins import HOOKS, PluginRegistry


def test_hook_plugin_resolves_and_contributes() -> None:
    points = {ep.name: ep for ep in metadata.entry_points(group=HOOKS)}
    import quorus.tenant.plugin as plugin

    assert points["tenant"].load() is plugin
    pm = new_plugin_manager()
    modules = [m.name for found in pm.hook.quorus_controller_state_modules() for m in found]
    extensions = [e.name for found in pm.hook.quorus_controller_extensions() for e in found]
    commands = [c.name for found in pm.hook.quorus_cli_commands() for c in found]
    assert "tenant" in modules and "tenant" in extensions and "tenant" in commands


def test_mtls_auth_method_resolves() -> None:
    from quorus.tenant.mtls import MtlsAuth

    assert PluginRegistry().load("quorus.auth", "mtls") == MtlsAuth.from_options
    infos = {(i.group, i.name): i for i in PluginRegistry().describe(["quorus.auth"])}
    assert infos[("quorus.auth", "mtls")].distribution == "quorus-tenant"
