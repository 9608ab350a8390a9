"""``quorus workflow submit|status|list|watch|pause|resume|cancel|register|registrations|
unregister``: workflows on the controller quorum, over its REST API.

``submit`` and ``register`` check the files here first (every problem with file, line and
column, before anything is sent), bind what only this machine knows — ``${env:...}``,
``${file:...}``, ``--set`` — and send the files with those values; the quorum binds dates at
the execution's start and results as steps end. The controller options (``--controller``,
``--token``, ``--json``) are the fleet commands'.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from quorus.core.cli.fleet import connected, fleet_options
from quorus.workflow.cli import (
    EXIT_FAILED,
    _binder,
    _fail,
    _prepared,
    parse_sets,
    refuse_unsupported,
    workflow,
)

_FINAL = ("completed", "failed", "cancelled")


def _files(paths: Sequence[str]) -> dict[str, str]:
    """File name → YAML text for every file given or found in a directory given."""
    found: dict[str, str] = {}
    for text in paths:
        path = Path(text)
        members = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")) \
            if path.is_dir() else [path]
        for member in members:
            try:
                found[str(member)] = member.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                _fail(f"cannot read {member}: {exc}")
    return found


def _bound(files: tuple[str, ...], name: str | None, environment: str | None,
           sets: dict[str, str], roots: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    prepared = _prepared(files, name, sets)
    if prepared.workflow.dry_run or prepared.workflow.virtual_run:
        _fail("the workflow asks for a dry or virtual run (spec.execution): run it here with "
              "quorus workflow run", EXIT_FAILED)
    refuse_unsupported(prepared.workflow)
    binder = _binder(prepared, files, environment, sets, roots, execution_id="")
    bindings, problems = binder.static_bindings()
    if problems:
        lines = sorted({f"  {where}: {why}" for where, _, why in problems})
        _fail("cannot bind here:\n" + "\n".join(lines))
    return prepared, bindings


def _emit(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _show(view: dict[str, Any]) -> None:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(view.get("counts", {}).items()))
    paused = " (paused)" if view.get("paused") and view.get("status") == "running" else ""
    click.echo(f"{view['execution_id']}: workflow {view['workflow']} {view['status']}{paused}; "
               f"{counts}")
    for step in view.get("steps", []):
        detail = step.get("error") or step.get("reason") or ""
        job = f" job {step['job_id']}" if step.get("job_id") else ""
        click.echo(f"  {step['step']}: {step['status']}{job}{': ' + detail if detail else ''}")
    for action in view.get("actions", []):
        click.echo(f"  action {action['action']} {action['target']}: "
                   f"{'ok' if action['ok'] else 'failed'} {action.get('detail', '')}")
    if view.get("error"):
        click.echo(f"  {view['error']}")


def _follow(client: Any, execution_id: str, interval: float, as_json: bool) -> None:
    from quorus.workflow.controller import client as api

    seen: dict[str, str] = {}
    while True:
        view = api.status(client, execution_id)
        for step in view.get("steps", []):
            if seen.get(step["step"]) != step["status"]:
                seen[step["step"]] = step["status"]
                if not as_json:
                    click.echo(f"{step['step']}: {step['status']}", err=True)
        if view["status"] in _FINAL and (view.get("actions_recorded", True)):
            break
        time.sleep(interval)
    if as_json:
        _emit(view)
    else:
        _show(view)
    if view["status"] != "completed":
        sys.exit(EXIT_FAILED)


files_argument = click.argument("files", nargs=-1, required=True,
                                type=click.Path(exists=True, dir_okay=True))
binding_options = [
    click.option("--name", help="The workflow, group or transfer to use when the files "
                                "define several."),
    click.option("--env", "environment", metavar="NAME", help="The environment to use."),
    click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
                 help="Set a variable; repeatable."),
    click.option("--allow-file-root", "roots", multiple=True, metavar="DIR",
                 help="Directories ${file:...} may read (default: the workflow file's)."),
]


def _binding(command: Any) -> Any:
    for option in reversed(binding_options):
        command = option(command)
    return command


@workflow.command()
@files_argument
@_binding
@click.option("--id", "execution_id", help="The execution's id (the same id again returns the "
                                           "execution already submitted).")
@click.option("--wait", is_flag=True, help="Follow the execution until it ends.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls.")
@fleet_options
def submit(files: tuple[str, ...], name: str | None, environment: str | None,
           sets: tuple[str, ...], roots: tuple[str, ...], execution_id: str | None, wait: bool,
           interval: float, controllers: tuple[str, ...], token: str | None,
           as_json: bool) -> None:
    """Run the workflow in FILES once on the controller quorum; its transfers run on agents.
    Prints the execution's id."""
    from quorus.workflow.controller import client as api

    values = parse_sets(sets)
    _, bindings = _bound(files, name, environment, values, roots)
    with connected(controllers, token) as client:
        view = api.submit(client, _files(files), workflow=name, environment=environment,
                          sets=values, bindings=bindings, execution_id=execution_id)
        if wait:
            _follow(client, view["execution_id"], interval, as_json)
            return
    if as_json:
        _emit(view)
    else:
        click.echo(view["execution_id"])


@workflow.command()
@click.argument("execution_id")
@fleet_options
def status(execution_id: str, controllers: tuple[str, ...], token: str | None,
           as_json: bool) -> None:
    """Show an execution on the quorum: its steps, jobs and actions."""
    from quorus.workflow.controller import client as api

    with connected(controllers, token) as client:
        view = api.status(client, execution_id)
    _emit(view) if as_json else _show(view)


@workflow.command()
@click.argument("execution_id")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls.")
@fleet_options
def watch(execution_id: str, interval: float, controllers: tuple[str, ...], token: str | None,
          as_json: bool) -> None:
    """Follow an execution until it ends (exit 0 if it completed)."""
    with connected(controllers, token) as client:
        _follow(client, execution_id, interval, as_json)


@workflow.command("list")
@click.option("--status", "wanted", type=click.Choice(["running", "completed", "failed",
                                                       "cancelled"]))
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@fleet_options
def list_(wanted: str | None, limit: int, controllers: tuple[str, ...], token: str | None,
          as_json: bool) -> None:
    """Executions on the quorum, newest first."""
    from quorus.workflow.controller import client as api

    with connected(controllers, token) as client:
        found = api.list_executions(client, status=wanted, limit=limit)
    if as_json:
        _emit(found)
        return
    for view in found:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(view.get("counts", {}).items()))
        click.echo(f"{view['execution_id']}  {view['workflow']}  {view['status']}  {counts}")


def _change(verb: str, execution_id: str, controllers: tuple[str, ...], token: str | None,
            as_json: bool, reason: str | None = None) -> None:
    from quorus.workflow.controller import client as api

    with connected(controllers, token) as client:
        if verb == "cancel":
            view = api.cancel(client, execution_id, reason)
        elif verb == "pause":
            view = api.pause(client, execution_id)
        else:
            view = api.resume(client, execution_id)
    _emit(view) if as_json else _show(view)


@workflow.command()
@click.argument("execution_id")
@fleet_options
def pause(execution_id: str, controllers: tuple[str, ...], token: str | None,
          as_json: bool) -> None:
    """Start no further steps of an execution; running transfers go on."""
    _change("pause", execution_id, controllers, token, as_json)


@workflow.command()
@click.argument("execution_id")
@fleet_options
def resume(execution_id: str, controllers: tuple[str, ...], token: str | None,
           as_json: bool) -> None:
    """Let a paused execution start steps again."""
    _change("resume", execution_id, controllers, token, as_json)


@workflow.command()
@click.argument("execution_id")
@click.option("--reason", help="Why; recorded with the skipped and cancelled steps.")
@fleet_options
def cancel(execution_id: str, reason: str | None, controllers: tuple[str, ...],
           token: str | None, as_json: bool) -> None:
    """Cancel an execution: its running jobs are cancelled and the rest skipped."""
    _change("cancel", execution_id, controllers, token, as_json, reason)


@workflow.command()
@files_argument
@_binding
@click.option("--as", "registration", metavar="NAME", help="The registration's name "
                                                            "(default: the workflow's).")
@fleet_options
def register(files: tuple[str, ...], name: str | None, environment: str | None,
             sets: tuple[str, ...], roots: tuple[str, ...], registration: str | None,
             controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """Register the workflow in FILES with the quorum, whose leader starts it on each of its
    triggers (cron, flag file)."""
    from quorus.workflow.controller import client as api

    values = parse_sets(sets)
    _, bindings = _bound(files, name, environment, values, roots)
    with connected(controllers, token) as client:
        view = api.register(client, _files(files), name=registration, workflow=name,
                            environment=environment, sets=values, bindings=bindings)
    _emit(view) if as_json else click.echo(f"registered {view.get('name', registration)}")


@workflow.command()
@fleet_options
def registrations(controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """Registered workflows with their triggers."""
    from quorus.workflow.controller import client as api

    with connected(controllers, token) as client:
        found = api.list_registrations(client)
    if as_json:
        _emit(found)
        return
    for item in found:
        click.echo(json.dumps(item, sort_keys=True, default=str))


@workflow.command()
@click.argument("name")
@fleet_options
def unregister(name: str, controllers: tuple[str, ...], token: str | None,
               as_json: bool) -> None:
    """Stop a registered workflow's triggers (executions it started are kept)."""
    from quorus.workflow.controller import client as api

    with connected(controllers, token) as client:
        view = api.unregister(client, name)
    _emit(view) if as_json else click.echo(f"unregistered {name}")


__all__ = ["submit"]
