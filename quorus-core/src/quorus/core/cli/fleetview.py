"""How the fleet commands show the controller's answers to people: rich tables for jobs,
agents and the cluster, and a job's progress while it is followed (a bar on a terminal,
plain lines otherwise). Everything shown comes from the API's views, whose URIs are already
redacted and whose secret protocol options are already ``***``.

rich is imported only when a table or bar is drawn, as in :mod:`quorus.core.cli.progress`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from quorus.core.units import format_size

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

#: Width of tables written to something that is not a terminal.
PIPED_WIDTH = 200
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled"})
#: A watcher is called with each new view of the job.
JobWatcher = Callable[[Mapping[str, Any]], None]


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped into a file or grep: no terminal to fit, so do not fold rows at 80 columns.
        console = Console(stderr=stderr, highlight=False, width=PIPED_WIDTH)
    return console


def _table(title: str | None, *columns: str) -> Table:
    from rich.table import Table

    table = Table(title=title, show_lines=False, title_justify="left")
    for n, column in enumerate(columns):
        # Ids stay whole (people copy them); the rest folds when the terminal is narrow.
        table.add_column(column, no_wrap=n == 0, overflow="fold")
    return table


def ago(at: Any, now: float | None = None) -> str:
    """``12 s ago`` for a wall-clock time, ``-`` for none."""
    if not isinstance(at, int | float):
        return "-"
    seconds = max(0.0, (time.time() if now is None else now) - at)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86_400:.0f} d ago"


def job_agent(job: Mapping[str, Any]) -> str:
    """The agent holding the job now, else the one of its last attempt."""
    if job.get("agent_id"):
        return str(job["agent_id"])
    attempts = job.get("attempts") or []
    return str(attempts[-1].get("agent_id", "-")) if attempts else "-"


def progress_text(job: Mapping[str, Any]) -> str:
    """``1.0 MiB / 4.0 MiB (25 %)`` while it runs; the bytes moved once it is done."""
    progress = job.get("progress")
    if isinstance(progress, Mapping):
        done = int(progress.get("bytes_done") or 0)
        total = progress.get("total_bytes")
        if isinstance(total, int) and total > 0:
            return f"{format_size(done)} / {format_size(total)} ({100 * done // total} %)"
        return format_size(done)
    if job.get("state") == "completed":
        return format_size(int(job.get("bytes_transferred") or 0))
    return "-"


def job_note(job: Mapping[str, Any]) -> str:
    """Why a job waits, or why it failed."""
    return str(job.get("waiting_reason") or job.get("error") or "")


def print_jobs(jobs: list[dict[str, Any]], next_cursor: str | None) -> None:
    table = _table(None, "id", "state", "agent", "attempt", "progress", "source",
                   "destination", "note")
    for job in jobs:
        table.add_row(str(job.get("id")), _state(job.get("state")), job_agent(job),
                      str(job.get("attempt", "")), progress_text(job),
                      str(job.get("source_display", "")), str(job.get("destination_display", "")),
                      job_note(job))
    console = _console()
    console.print(table)
    footer = f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}"
    if next_cursor:
        footer += f"; more with --cursor {next_cursor}"
    console.print(footer)


def print_batch(results: list[dict[str, Any]]) -> None:
    """The outcome of ``jobs submit --from``: each job's line, id, and state or refusal."""
    table = _table(None, "line", "id", "status", "state", "source", "destination", "note")
    submitted = 0
    for result in results:
        job = result.get("job") or {}
        ok = result.get("status") == 201
        submitted += ok
        table.add_row(str(result.get("line", "")), str(job.get("id") or result.get("id", "")),
                      str(result.get("status", "")),
                      _state(job.get("state")) if ok else f"[red]{result.get('error', '')}[/]",
                      str(job.get("source_display", "")),
                      str(job.get("destination_display", "")),
                      job_note(job) if ok else str(result.get("message", "")))
    console = _console()
    console.print(table)
    refused = len(results) - submitted
    console.print(f"{submitted} job{'s' if submitted != 1 else ''} submitted"
                  + (f", {refused} refused" if refused else ""))


def print_job(job: Mapping[str, Any]) -> None:
    options = job.get("options") or {}
    placement = job.get("placement") or {}
    rows: list[tuple[str, Any]] = [
        ("id", job.get("id")),
        ("state", _state(job.get("state"))),
        ("source", job.get("source_display")),
        ("destination", job.get("destination_display")),
        ("agent", job_agent(job)),
        ("attempt", f"{job.get('attempt')} of {(job.get('retry') or {}).get('max_attempts')}"),
        ("progress", progress_text(job)),
        ("waiting because", job.get("waiting_reason")),
        ("error", job.get("error")),
        ("sha256", job.get("sha256")),
        ("priority", job.get("priority")),
        ("checksum", options.get("checksum")),
        ("expected size", options.get("expected_size")),
        ("overwrite", options.get("overwrite")),
        ("bandwidth", f"{options['bandwidth_mbps']} Mbit/s" if options.get("bandwidth_mbps")
         else None),
        ("protocol options", ", ".join(f"{k}={v}" for k, v in
                                       (options.get("protocol_options") or {}).items())),
        ("affinity", ", ".join(selector(r) for r in placement.get("affinity") or [])),
        ("anti-affinity", ", ".join(selector(r) for r in placement.get("anti_affinity") or [])),
        ("submitted", ago(job.get("submitted_at"))),
        ("submitted by", job.get("submitted_by")),
        ("finished", ago(job.get("finished_at")) if job.get("finished_at") else None),
        ("tenant / namespace", f"{job.get('tenant')} / {job.get('namespace')}"),
    ]
    console = _console()
    console.print(_pairs(rows))
    attempts = job.get("attempts") or []
    if attempts:
        table = _table("attempts", "#", "agent", "assigned", "outcome", "reason")
        for attempt in attempts:
            table.add_row(str(attempt.get("number")), str(attempt.get("agent_id")),
                          ago(attempt.get("assigned_at")), str(attempt.get("outcome") or "current"),
                          str(attempt.get("reason") or ""))
        console.print(table)


def _free_slots(agent: Mapping[str, Any], separator: str) -> str:
    """Free slots of the agent's maximum; ``?`` until its first heartbeat says."""
    free = agent.get("free_slots")
    most = (agent.get("capabilities") or {}).get("max_concurrent")
    return f"{'?' if free is None else free}{separator}{'?' if most is None else most}"


def print_agents(agents: list[dict[str, Any]]) -> None:
    table = _table(None, "id", "state", "connected", "host", "protocols", "slots free",
                   "jobs", "site", "labels", "last heartbeat")
    for agent in agents:
        capabilities = agent.get("capabilities") or {}
        table.add_row(
            str(agent.get("id")), _state(agent.get("state")),
            "yes" if agent.get("connected") else "no", str(agent.get("hostname", "")),
            ",".join(capabilities.get("protocols") or []),
            _free_slots(agent, "/"),
            str(len(agent.get("running_jobs") or [])), _site(agent.get("location") or {}),
            _labels(agent.get("labels") or {}), ago(agent.get("last_heartbeat")),
        )
    console = _console()
    console.print(table)
    console.print(f"{len(agents)} agent{'s' if len(agents) != 1 else ''}")


def print_agent(agent: Mapping[str, Any]) -> None:
    capabilities = agent.get("capabilities") or {}
    rows: list[tuple[str, Any]] = [
        ("id", agent.get("id")),
        ("state", _state(agent.get("state"))),
        ("reason", agent.get("state_reason")),
        ("connected", "yes" if agent.get("connected") else "no"),
        ("host", agent.get("hostname")),
        ("version", agent.get("version")),
        ("protocols", ", ".join(capabilities.get("protocols") or [])),
        ("slots free", _free_slots(agent, " of ")),
        ("site", _site(agent.get("location") or {})),
        ("labels", _labels(agent.get("labels") or {})),
        ("last heartbeat", ago(agent.get("last_heartbeat"))),
        ("registered", ago(agent.get("registered_at"))),
        ("drain deadline", ago(agent["drain_deadline"]).replace(" ago", "")
         if agent.get("drain_deadline") else None),
        ("health", ", ".join(f"{k}: {v}" for k, v in (agent.get("health") or {}).items())),
    ]
    console = _console()
    console.print(_pairs(rows))
    running = agent.get("running_jobs") or []
    if running:
        table = _table("running jobs", "job", "attempt", "state", "progress")
        for job in running:
            table.add_row(str(job.get("job_id")), str(job.get("attempt")), str(job.get("state")),
                          progress_text(job))
        console.print(table)


def print_cluster(status: Mapping[str, Any]) -> None:
    members = status.get("members") or {}
    rows: list[tuple[str, Any]] = [
        ("answered by", f"{status.get('node_id')} ({status.get('role')})"),
        ("consensus", status.get("backend")),
        ("leader", status.get("leader") or "none known"),
        ("leader URL", status.get("leader_url")),
        ("term", status.get("term")),
        ("commit index", status.get("commit_index")),
        ("applied index", status.get("applied_index")),
        ("members", ", ".join(f"{k} ({v})" for k, v in sorted(members.items()))),
        ("agents", status.get("agents")),
        ("jobs", ", ".join(f"{k} {v}" for k, v in (status.get("jobs") or {}).items())),
        ("uptime", f"{status['uptime_seconds']:.0f} s"
         if isinstance(status.get("uptime_seconds"), int | float) else None),
    ]
    _console().print(_pairs(rows, title="Quorus cluster"))


def _pairs(rows: list[tuple[str, Any]], title: str | None = None) -> Table:
    from rich.table import Table

    table = Table(title=title, show_header=False, box=None, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in rows:
        if value not in (None, ""):
            table.add_row(name, str(value))
    return table


def selector(requirement: Any) -> str:
    """A label requirement of the API (``{key, operator, value}``) as it is written."""
    if not isinstance(requirement, Mapping):
        return str(requirement)
    key, operator = requirement.get("key", "?"), requirement.get("operator")
    if operator == "exists":
        return str(key)
    if operator == "absent":
        return f"!{key}"
    return f"{key}{operator}{requirement.get('value', '')}"


def _state(state: Any) -> str:
    return str(state) if state else "-"


def _site(location: Mapping[str, Any]) -> str:
    parts = [location.get(k) for k in ("region", "datacenter", "zone")]
    return "/".join(str(p) for p in parts if p) or "-"


def _labels(labels: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


# -- following a job ------------------------------------------------------------------------------


def describe(job: Mapping[str, Any]) -> str:
    """One line on where a job is: ``job-1: running on agent-2 (attempt 1): 1.0 MiB / ...``."""
    state = str(job.get("state"))
    text = f"{job.get('id')}: {state}"
    if state in ("assigned", "running"):
        text += f" on {job_agent(job)} (attempt {job.get('attempt')})"
    if state in ("running", "completed") and progress_text(job) != "-":
        text += f": {progress_text(job)}"
        progress = job.get("progress")
        if isinstance(progress, Mapping) and progress.get("rate"):
            text += f" at {format_size(float(progress['rate']))}/s"
    note = job_note(job)
    if note:
        text += f" ({note})"
    if state == "completed" and job.get("sha256"):
        text += f" sha256:{job['sha256']}"
    return text


@contextmanager
def job_display(kind: str, job_id: str) -> Iterator[JobWatcher]:
    """Yield the function to call with each view of the followed job: ``bar`` draws a rich
    progress bar on stderr, ``plain`` prints a line whenever the state changes (and at most
    once a second while the bytes move) until the job ends, ``none`` shows nothing."""
    if kind == "none":
        yield lambda job: None
        return
    if kind == "plain":
        last: dict[str, Any] = {"line": None, "state": None, "at": 0.0}

        def plain(job: Mapping[str, Any]) -> None:
            if job.get("state") in TERMINAL_STATES:
                return  # the command reports the end itself
            line = describe(job)
            now = time.monotonic()
            changed = job.get("state") != last["state"]
            if line != last["line"] and (changed or now - last["at"] >= 1.0):
                click.echo(line, err=True)
                last.update(line=line, state=job.get("state"), at=now)

        yield plain
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("[bold]{task.description}"), BarColumn(),
               DownloadColumn(binary_units=True), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=_console(stderr=True), transient=False) as bar:
        task = bar.add_task(f"{job_id} queued", total=None)

        def update(job: Mapping[str, Any]) -> None:
            state = str(job.get("state"))
            progress = job.get("progress")
            description = f"{job_id} {state}"
            if state in ("assigned", "running"):
                description += f" on {job_agent(job)}"
            if isinstance(progress, Mapping):
                total = progress.get("total_bytes")
                bar.update(task, description=description,
                           completed=int(progress.get("bytes_done") or 0),
                           total=total if isinstance(total, int) else None)
            elif state == "completed":
                done = int(job.get("bytes_transferred") or 0)
                bar.update(task, description=description, completed=done, total=done or 1)
            else:
                bar.update(task, description=description)

        yield update


__all__ = [
    "TERMINAL_STATES",
    "JobWatcher",
    "ago",
    "describe",
    "job_agent",
    "job_display",
    "print_agent",
    "print_agents",
    "print_cluster",
    "print_job",
    "print_jobs",
]
