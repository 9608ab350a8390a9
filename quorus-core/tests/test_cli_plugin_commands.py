"""Sub-commands contributed by hook plugins: added to ``quorus``, a taken name left out with a
warning, a failing plugin not taking the others down."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
import pytest
from click.testing import CliRunner
from quorus.core.cli.main import add_plugin_commands
from quorus.core.hooks import hookimpl, new_plugin_manager


@click.command("hello")
def hello() -> None:
    click.echo("hello from a plugin")


@click.command("transfer")
def clashing() -> None:
    click.echo("never added")


class Good:
    @hookimpl
    def quorus_cli_commands(self) -> Sequence[Any]:
        return [hello, clashing, "not a command"]


class Broken:
    @hookimpl
    def quorus_cli_commands(self) -> Sequence[Any]:
        raise RuntimeError("broken plugin")


def test_plugin_commands_join_the_group(monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    pm = new_plugin_manager(load_entry_points=False)
    pm.register(Good(), name="good")
    pm.register(Broken(), name="broken")
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: pm)

    @click.group()
    def group() -> None:
        pass

    @group.command("transfer")
    def transfer() -> None:
        click.echo("built in")

    add_plugin_commands(group)
    assert sorted(group.commands) == ["hello", "transfer"]
    result = CliRunner().invoke(group, ["hello"])
    assert result.exit_code == 0 and "hello from a plugin" in result.output
    assert CliRunner().invoke(group, ["transfer"]).output.strip() == "built in"
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "broken plugin" in messages
    assert "'transfer' is already taken" in messages
    assert "not a click command" in messages
