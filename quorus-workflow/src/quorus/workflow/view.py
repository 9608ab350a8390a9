"""How the workflow commands show things on a terminal: live progress per transfer, plans,
dry-run and virtual-run reports, and summaries. rich is imported only when something is drawn."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from quorus.core.units import format_size
from quorus.workflow.dryrun import DryRunReport
from quorus.workflow.local import StepEvent
from quorus.workflow.planner import Plan
from quorus.workflow.summary import ExecutionSummary
from quorus.workflow.virtual import VirtualReport

_STYLE = {"completed": "green", "failed": "red", "skipped": "yellow", "cancelled": "magenta",
          "running": "cyan", "pending": "dim"}


@contextmanager
def live_progress(kind: str, plan: Plan) -> Iterator[Callable[[StepEvent], None]]:
    """An event sink drawing ``kind`` progress: ``live`` (a table redrawn in place), ``plain``
    (a line per change, at most one a second per running transfer) or ``none``."""
    if kind == "none":
        yield lambda event: None
        return
    if kind == "plain":
        last: dict[str, float] = {}

        def plain(event: StepEvent) -> None:
            if not event.step:
                return
            if event.status == "running" and event.bytes:
                now = time.monotonic()
                if now - last.get(event.step, 0.0) < 1.0:
                    return
                last[event.step] = now
                click.echo(f"{event.step}: {format_size(event.bytes)} at "
                           f"{format_size(event.rate)}/s", err=True)
                return
            detail = f": {event.detail}" if event.detail else ""
            click.echo(f"{event.step}: {event.status}{detail}", err=True)

        yield plain
        return
    from rich.console import Console
    from rich.live import Live

    rows: dict[str, StepEvent] = {p.step_id: StepEvent(p.step_id, "pending") for p in plan.steps}
    console = Console(stderr=True, highlight=False)
    with Live(_table(rows), console=console, refresh_per_second=4, transient=False) as live:

        def update(event: StepEvent) -> None:
            if event.step:
                previous = rows.get(event.step)
                if previous is not None and event.status == "running" and not event.bytes:
                    event = StepEvent(event.step, "running", previous.bytes, previous.total)
                rows[event.step] = event
                live.update(_table(rows))

        yield update


def _table(rows: dict[str, StepEvent]) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("step", "status", "bytes", "rate", "detail"):
        table.add_column(column)
    for event in rows.values():
        total = f" / {format_size(event.total)}" if event.total else ""
        table.add_row(event.step, f"[{_STYLE.get(event.status, '')}]{event.status}",
                      f"{format_size(event.bytes)}{total}" if event.bytes else "",
                      f"{format_size(event.rate)}/s" if event.status == "running" and event.rate
                      else "", event.detail[:80])
    return table


def print_plan(plan: Plan) -> None:
    workflow = plan.workflow
    click.echo(f"workflow {workflow.name} ({workflow.kind}): {len(workflow.groups)} groups, "
               f"{len(plan.steps)} transfers, {len(plan.levels)} levels")
    for number, level in enumerate(plan.levels):
        click.echo(f"  level {number}: " + ", ".join(p.step_id for p in level))


def print_dry_run(report: DryRunReport) -> None:
    print_plan(report.plan)
    for check in report.steps:
        size = f" ({format_size(check.size)})" if check.size is not None else ""
        if check.source:
            click.echo(f"  {check.step}: {check.source} -> {check.destination}{size}")
        if check.validation:
            click.echo(f"  {check.step}: verifies {_validation(check.validation)}")
    for finding in report.findings:
        where = f"{finding.step}: " if finding.step else ""
        click.echo(f"{finding.level}: {where}{finding.message}")
    errors = sum(1 for f in report.findings if f.level == "error")
    click.echo("dry run: nothing would stop this run" if report.ok else
               f"dry run: {errors} problem{'s' if errors != 1 else ''} would stop this run")


def _validation(validation: dict[str, Any]) -> str:
    """``size at most 10 B, sha256:HEX``: what a dry run shows of a step's checks."""
    parts: list[str] = []
    bounds = validation.get("expectedSize") or {}
    low, high = bounds.get("min"), bounds.get("max")
    if low is not None and low == high:
        parts.append(f"size exactly {low} bytes")
    elif low is not None and high is not None:
        parts.append(f"size {format_size(low)} to {format_size(high)}")
    elif low is not None:
        parts.append(f"size at least {format_size(low)}")
    elif high is not None:
        parts.append(f"size at most {format_size(high)}")
    if validation.get("checksum"):
        parts.append(str(validation["checksum"]))
    return ", ".join(parts)


def print_virtual(report: VirtualReport) -> None:
    click.echo(f"virtual run: {report.summary.status} in {report.duration:.2f} s (simulated), "
               f"peak {report.peak_concurrency} transfers at once")
    for tenant, size in sorted(report.bytes_by_tenant.items()):
        click.echo(f"  {tenant}: {format_size(size)}")
    for step in report.steps:
        timing = (f"{step.start:.2f} to {step.end:.2f} s" if step.start is not None
                  and step.end is not None else "not run")
        click.echo(f"  {step.step}: {step.status}, {format_size(step.size)} "
                   f"(from {step.size_source}), {timing}")
    if report.unknown_sizes:
        click.echo(f"sizes unknown (counted as 0): {', '.join(report.unknown_sizes)}")


def print_summary(summary: ExecutionSummary) -> None:
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts().items()))
    took = ""
    if summary.started_at is not None and summary.finished_at is not None:
        took = f" in {summary.finished_at - summary.started_at:.2f} s"
    click.echo(f"workflow {summary.workflow}: {summary.status}{took}; {counts}; "
               f"{format_size(summary.bytes)}", err=True)
    for step in summary.steps:
        if step.status.value in ("failed", "skipped", "cancelled"):
            click.echo(f"  {step.step}: {step.status}: {step.error or step.reason}", err=True)
    for action in summary.actions:
        click.echo(f"  action {action.action} {action.target}: "
                   f"{'ok' if action.ok else 'failed'} {action.detail}", err=True)
    if summary.error:
        click.echo(f"  {summary.error}", err=True)


__all__ = ["live_progress", "print_dry_run", "print_plan", "print_summary", "print_virtual"]
