"""``quorus workflow``: validate, plan, dry-run, simulate and run YAML workflows here, export
the JSON Schemas, and (``quorus.workflow.cli_quorum``) submit and control executions on the
controller quorum.

Exit codes: 0 success, 1 the run failed (or a dry run found problems), 2 invalid definitions
or usage, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
from quorus.core.errors import ConfigurationError, QuorusError

EXIT_FAILED = 1
EXIT_INVALID = 2


def _fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    click.echo(f"quorus: {message}", err=True)
    sys.exit(code)


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """``--set NAME=VALUE`` items; a malformed one is a usage error."""
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint="--set")
        values[name.strip()] = value
    return values


def _prepared(files: Sequence[str], name: str | None, sets: dict[str, str]) -> Any:
    from quorus.workflow.documents import DefinitionError
    from quorus.workflow.prepare import prepare_paths

    try:
        return prepare_paths(files, name=name, sets=sets)
    except DefinitionError as exc:
        _fail(str(exc))
    except ConfigurationError as exc:
        _fail(str(exc))


def _binder(prepared: Any, files: Sequence[str], env: str | None, sets: dict[str, str],
            roots: Sequence[str], execution_id: str) -> Any:
    from quorus.workflow.binding import Binder, Unbound, process_context

    base = Path(files[0]).resolve()
    base_dir = base if base.is_dir() else base.parent
    context = process_context(
        prepared.workflow, started_at=time.time(), execution_id=execution_id, environment=env,
        sets=sets, file_roots=tuple(Path(r) for r in roots), base_dir=base_dir,
        tenants=prepared.definitions.tenants)
    try:
        return Binder(prepared.workflow, context)
    except Unbound as exc:
        _fail(exc.message)


def refuse_unsupported(workflow: Any) -> None:
    """Stop (exit 1) when the workflow asks for what cannot be done here."""
    errors = [(where, n.message) for where, n in workflow.all_notices() if n.level == "error"]
    if errors:
        lines = "\n".join(f"  {where}: {message}" for where, message in errors)
        _fail(f"this workflow cannot run here (a dry run shows everything):\n{lines}",
              EXIT_FAILED)


def _emit(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


files_argument = click.argument("files", nargs=-1, required=True,
                                type=click.Path(exists=True, dir_okay=True))
name_option = click.option("--name", help="The workflow, group or transfer to use when the "
                                          "files define several.")
set_option = click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
                          help="Set a variable (overrides the files); repeatable. Dotted names "
                               "set context values, e.g. --set acme-corp.api.endpoint=URL.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


@click.group()
def workflow() -> None:
    """YAML transfer workflows: validate, plan, run here or on the quorum."""


@workflow.command()
@files_argument
@name_option
@set_option
@json_option
def validate(files: tuple[str, ...], name: str | None, sets: tuple[str, ...],
             as_json: bool) -> None:
    """Check FILES (YAML files or directories): schema, references, conditions, dependencies.
    Every problem is reported with file, line and column."""
    from quorus.workflow.checks import RUNNABLE
    from quorus.workflow.documents import DefinitionError, read_paths
    from quorus.workflow.prepare import prepare, prepare_each
    from quorus.workflow.validation import validate_or_raise

    try:
        documents, problems = read_paths(files)
        if problems:
            raise DefinitionError(tuple(problems))
        if not any(d.kind in RUNNABLE for d in documents):
            validate_or_raise(documents)
            _report_valid(documents, [], as_json)
            return
        values = parse_sets(sets)
        found = ([prepare(documents, name=name, sets=values)] if name is not None
                 else prepare_each(documents, sets=values))
    except DefinitionError as exc:
        if as_json:
            _emit({"ok": False, "issues": [str(i) for i in exc.issues]})
            sys.exit(EXIT_INVALID)
        _fail(str(exc))
    except ConfigurationError as exc:
        _fail(str(exc))
    _report_valid(documents, found, as_json)


def _report_valid(documents: Sequence[Any], found: Sequence[Any], as_json: bool) -> None:
    """One line for the documents, one per runnable definition (``--json``: one object)."""
    definitions = [{"workflow": p.workflow.name, "kind": p.workflow.kind,
                    "groups": len(p.workflow.groups), "transfers": len(p.plan.steps),
                    "levels": len(p.plan.levels)} for p in found]
    summary: dict[str, Any] = {"ok": True, "documents": len(documents),
                               "kinds": sorted({str(d.kind) for d in documents}),
                               "definitions": definitions}
    if len(definitions) == 1:
        summary.update(definitions[0])
    if as_json:
        _emit(summary)
        return
    click.echo(f"ok: {summary['documents']} document(s) ({', '.join(summary['kinds'])})")
    for item in definitions:
        click.echo(f"  {item['kind']} {item['workflow']}: {item['groups']} group(s), "
                   f"{item['transfers']} transfer(s), {item['levels']} level(s)")


@workflow.command()
@files_argument
@name_option
@set_option
@json_option
def plan(files: tuple[str, ...], name: str | None, sets: tuple[str, ...], as_json: bool) -> None:
    """Show the execution plan of FILES: groups and transfers by dependency level."""
    from quorus.workflow.view import print_plan

    prepared = _prepared(files, name, parse_sets(sets))
    if as_json:
        _emit(prepared.plan.to_json())
    else:
        print_plan(prepared.plan)


@workflow.command()
@click.argument("kind")
def schema(kind: str) -> None:
    """Print the JSON Schema of KIND (Transfer, TransferGroup, TransferWorkflow,
    TenantConfiguration), for editors and linters."""
    from quorus.workflow.schema import KINDS, schema_for

    try:
        document = schema_for(kind)
    except KeyError:
        _fail(f"no kind {kind!r}; kinds: {', '.join(KINDS)}")
    _emit(document)


@workflow.command()
@files_argument
@name_option
@set_option
@click.option("--env", "environment", metavar="NAME",
              help="Use the variables of this entry of the workflow's environments.")
@click.option("--dry-run", is_flag=True, help="Validate, bind, check sources and destinations, "
                                               "show the plan; move nothing.")
@click.option("--virtual", is_flag=True, help="Simulate the run (sizes, durations, concurrency, "
                                               "bytes per tenant); move nothing.")
@click.option("--offline", is_flag=True, help="Dry or virtual run: do not contact remote "
                                               "servers (local files are still looked at).")
@click.option("--assume-rate", default="100MB/s", show_default=True, metavar="RATE",
              help="Virtual run: the rate of transfers that declare no bandwidth.")
@click.option("--allow-file-root", "roots", multiple=True, metavar="DIR",
              help="Directories ${file:...} may read (default: the workflow file's directory).")
@click.option("--parallelism", type=click.IntRange(min=1), metavar="N",
              help="At most N transfers at once (default: the workflow's parallelism, else 8).")
@click.option("--settings", "settings_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML settings of the actions (notify: {slackWebhook, webhooks}, smtp: "
                   "{...}, cleanup: {allowedRoots}); default: QUORUS_SLACK_WEBHOOK and "
                   "QUORUS_SMTP_* from the environment.")
@click.option("--progress", type=click.Choice(["auto", "live", "plain", "none"]), default="auto",
              show_default=True, help="Progress: a live table on a terminal, plain lines, none.")
@json_option
def run(files: tuple[str, ...], name: str | None, sets: tuple[str, ...],
        environment: str | None, dry_run: bool, virtual: bool, offline: bool, assume_rate: str,
        roots: tuple[str, ...], parallelism: int | None, settings_file: str | None,
        progress: str, as_json: bool) -> None:
    """Run the workflow in FILES here, with the local transfer engine."""
    from quorus.core import eventloop

    if dry_run and virtual:
        _fail("choose one of --dry-run and --virtual")
    values = parse_sets(sets)
    prepared = _prepared(files, name, values)
    execution_id = f"local-{uuid.uuid4().hex[:12]}"
    binder = _binder(prepared, files, environment, values, roots, execution_id)
    if not (dry_run or virtual):
        if prepared.workflow.dry_run or prepared.workflow.virtual_run:
            dry_run, virtual = prepared.workflow.dry_run, prepared.workflow.virtual_run
            click.echo(f"quorus: the workflow asks for a {'dry' if dry_run else 'virtual'} run "
                       "(spec.execution); nothing will move", err=True)
        else:
            refuse_unsupported(prepared.workflow)
    try:
        if dry_run:
            _dry_run(eventloop, prepared, binder, offline, as_json)
        elif virtual:
            _virtual_run(eventloop, prepared, binder, offline, assume_rate, as_json)
        else:
            _run(eventloop, prepared, binder, execution_id, parallelism, settings_file,
                 progress, as_json)
    except KeyboardInterrupt:
        click.echo("quorus: interrupted; a rerun resumes from the partial files", err=True)
        sys.exit(130)
    except QuorusError as exc:
        _fail(str(exc), EXIT_FAILED)


def _dry_run(eventloop: Any, prepared: Any, binder: Any, offline: bool, as_json: bool) -> None:
    from quorus.workflow.dryrun import dry_run
    from quorus.workflow.view import print_dry_run

    report = eventloop.run(lambda: dry_run(prepared.plan, binder, check_remote=not offline))
    if as_json:
        _emit(report.to_json())
    else:
        print_dry_run(report)
    if not report.ok:
        sys.exit(EXIT_FAILED)


def _virtual_run(eventloop: Any, prepared: Any, binder: Any, offline: bool, assume_rate: str,
                 as_json: bool) -> None:
    from quorus.core.units import parse_rate
    from quorus.workflow.view import print_virtual
    from quorus.workflow.virtual import virtual_run

    try:
        rate = parse_rate(assume_rate, what="--assume-rate")
    except ConfigurationError as exc:
        _fail(str(exc))
    report = eventloop.run(lambda: virtual_run(prepared.plan, binder, rate=rate,
                                               check_remote=not offline))
    if as_json:
        _emit(report.to_json())
    else:
        print_virtual(report)


def _run(eventloop: Any, prepared: Any, binder: Any, execution_id: str,
         parallelism: int | None, settings_file: str | None, progress: str,
         as_json: bool) -> None:
    from dataclasses import replace

    from quorus.workflow.actions import ActionContext, ActionSettings
    from quorus.workflow.local import LocalRunner
    from quorus.workflow.planner import Plan
    from quorus.workflow.plugin import installed_actions
    from quorus.workflow.view import live_progress, print_summary

    plan: Plan = prepared.plan
    if parallelism is not None:
        plan = replace(plan, workflow=replace(plan.workflow, parallelism=parallelism))
    if progress == "auto":
        progress = "none" if as_json else ("live" if sys.stderr.isatty() else "plain")
    import yaml

    try:
        if settings_file is not None:
            loaded = yaml.safe_load(Path(settings_file).read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise ConfigurationError(f"{settings_file}: expected a mapping of settings")
            settings = ActionSettings.from_mapping(loaded)
        else:
            settings = ActionSettings.from_env(dict(os.environ))
    except (ConfigurationError, OSError, yaml.YAMLError) as exc:
        _fail(f"action settings: {exc}")
    with live_progress(progress, plan) as on_event:
        runner = LocalRunner(
            plan, binder, execution_id=execution_id, actions=installed_actions(),
            action_context=ActionContext(settings=settings), on_event=on_event,
            max_engine_concurrency=plan.workflow.parallelism or 8, handle_signals=True)
        summary = eventloop.run(runner.run)
    if as_json:
        _emit(summary.to_json())
    else:
        print_summary(summary)
    if summary.status.value != "completed":
        sys.exit(EXIT_FAILED)


# The quorum commands join the group (they import this module, so they come last).
from quorus.workflow import cli_quorum  # noqa: E402

__all__ = ["cli_quorum", "parse_sets", "workflow"]
