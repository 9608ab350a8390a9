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


def test_core_never_imports_this_package() -> None:
    # The tenant package joins a controller through core's hooks only: no module of
    # quorus-core names it in an import, so core runs (and is tested) without it.
    import ast
    from pathlib import Path

    import quorus.core

    root = Path(quorus.core.__file__).parent
    offending: list[str] = []
    for source in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):  # from quorus import tenant, too
                names = [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
            offending += [f"{source.relative_to(root)}:{node.lineno} imports {name}"
                          for name in names
                          if name == "quorus.tenant" or name.startswith("quorus.tenant.")]
    assert len(list(root.rglob("*.py"))) > 50  # the walk found core's modules
    assert offending == []
