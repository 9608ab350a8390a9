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


def _fresh(code: str) -> str:
    """``code``'s output in a fresh interpreter (what is imported is process-wide)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout


def test_transfer_starts_without_the_fleet_and_plugin_command_lines(tmp_path: Any) -> None:
    source = tmp_path / "in.txt"
    source.write_text("data")
    out = _fresh(
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from quorus.core.cli.main import cli\n"
        f"result = CliRunner().invoke(cli, ['transfer', {str(source)!r}, "
        f"{str(tmp_path / 'out.txt')!r}, '--progress', 'none'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.endswith('.cli') or '.cli.' in m))\n"
    )
    assert "quorus.core.cli.fleet" not in out
    assert "quorus.tenant" not in out and "quorus.workflow" not in out
    assert (tmp_path / "out.txt").read_text() == "data"


def test_listing_and_naming_commands_brings_every_one_in() -> None:
    out = _fresh(
        "from click.testing import CliRunner\n"
        "from quorus.core.cli.main import cli\n"
        "print(CliRunner().invoke(cli, ['--help']).output)\n"
        "print('JOBS', CliRunner().invoke(cli, ['jobs', '--help']).exit_code)\n"
    )
    listed = out.split("Commands:")[1]
    import importlib.util

    plugins = [name for name, package in (("tenant", "quorus.tenant"),
                                          ("workflow", "quorus.workflow"))
               if importlib.util.find_spec(package) is not None]
    for name in ("transfer", "plugins", "cluster", "agents", "jobs", *plugins):
        assert f"\n  {name} " in listed, name
    assert "JOBS 0" in out
