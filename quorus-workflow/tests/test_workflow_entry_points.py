"""The distribution's hook plugin resolves through its entry point and contributes the
``quorus workflow`` commands and the built-in actions."""

from __future__ import annotations

from importlib import metadata

from quorus.core.hooks import new_plugin_manager
from quorus.core.plugins import HOOKS, PluginRegistry


def test_hook_entry_point_resolves_to_the_plugin_module() -> None:
    points = {ep.name: ep for ep in metadata.entry_points(group=HOOKS)}
    assert points["workflow"].value == "quorus.workflow.plugin"
    import quorus.workflow.plugin as plugin

    assert points["workflow"].load() is plugin
    infos = {info.name: info for info in PluginRegistry().describe([HOOKS])}
    assert infos["workflow"].status == "loaded"
    assert infos["workflow"].distribution == "quorus-workflow"


def test_plugin_contributes_commands_and_actions() -> None:
    pm = new_plugin_manager()
    commands = [c.name for group in pm.hook.quorus_cli_commands() for c in group]
    assert "workflow" in commands
    actions = {name for found in pm.hook.quorus_workflow_actions() for name in found}
    assert {"notify", "email", "cleanup", "rollback"} <= actions
