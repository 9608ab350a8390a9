"""The fleet commands of ``quorus``: ``cluster status|add-member|remove-member|transfer-leader``,
``agents list|show|drain`` and ``jobs submit|list|show|cancel|watch``, run against a
controller's REST API.

Every command takes ``--controller URL`` (several, or comma-separated, tried in turn; default
``$QUORUS_CONTROLLER`` or ``http://127.0.0.1:7080``), ``--token TEXT|env:NAME|file:PATH``
(default ``$QUORUS_TOKEN``, else ``./quorus-data/token`` as the embedded controller writes it)
and ``--json``. Exit codes as ``quorus transfer``: 0 done; 1 the job failed or was cancelled,
or a controller refused or could not be reached; 2 usage error (bad option, a request the
controller finds malformed, a missing or refused token); 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from quorus.core.cli.jobspec import submission
from quorus.core.errors import ConfigurationError
from quorus.core.secrets import Secret, resolve_secret
from quorus.core.units import parse_duration

if TYPE_CHECKING:
    from quorus.core.cli.client import ControllerClient

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_TOKEN_FILE = Path("quorus-data") / "token"
JOB_STATES = ("queued", "assigned", "running", "completed", "failed", "cancelled")

F = TypeVar("F", bound=Callable[..., Any])


def _usage_error(message: str) -> NoReturn:
    click.echo(f"quorus: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _failed(message: str) -> NoReturn:
    click.echo(f"quorus: {message}", err=True)
    sys.exit(EXIT_FAILED)


def fleet_token(spec: str | None) -> Secret:
    """The API token from ``--token``, else ``$QUORUS_TOKEN``, else ``./quorus-data/token``;
    a value or an ``env:NAME`` / ``file:PATH`` reference. :class:`ConfigurationError` says
    what to fix when there is none."""
    where = "--token"
    if spec is None and os.environ.get("QUORUS_TOKEN"):
        spec, where = os.environ["QUORUS_TOKEN"], "QUORUS_TOKEN"
    if spec is None:
        if not DEFAULT_TOKEN_FILE.is_file():
            raise ConfigurationError(
                "no API token: pass --token TEXT|env:NAME|file:PATH or set QUORUS_TOKEN "
                f"(the controller writes its token to {DEFAULT_TOKEN_FILE} in its directory)"
            )
        spec, where = f"file:{DEFAULT_TOKEN_FILE}", str(DEFAULT_TOKEN_FILE)
    try:
        secret = resolve_secret(spec)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    assert secret is not None
    if not secret.reveal().strip():
        raise ConfigurationError(f"{where}: the token is empty")
    return Secret(secret.reveal().strip(), source=secret.source)


def fleet_options(command: F) -> F:
    """``--controller``, ``--token`` and ``--json``, shared by every fleet command."""
    command = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON for machines instead of tables.")(command)
    command = click.option(
        "--token", metavar="TEXT|env:NAME|file:PATH",
        help="The controller's API token (default: $QUORUS_TOKEN, else ./quorus-data/token). "
             "Prefer env: or file:, a literal shows in the process list.")(command)
    command = click.option(
        "--controller", "controllers", multiple=True, metavar="URL",
        help="Controller REST address; repeat or comma-separate several, tried in turn "
             "(default: $QUORUS_CONTROLLER, else http://127.0.0.1:7080).")(command)
    return command


@contextmanager
def connected(controllers: tuple[str, ...], token: str | None) -> Iterator[ControllerClient]:
    """A client of the controllers; maps its errors to the command's exit codes (Ctrl-C,
    even while the client is being set up, to 130)."""
    try:
        from quorus.core.cli.client import (
            DEFAULT_CONTROLLER,
            ControllerClient,
            ControllerError,
            TokenRejected,
            controller_urls,
        )

        try:
            specs = list(controllers) or [
                os.environ.get("QUORUS_CONTROLLER") or DEFAULT_CONTROLLER]
            client = ControllerClient(controller_urls(specs), fleet_token(token))
        except ConfigurationError as exc:
            _usage_error(str(exc))
        try:
            yield client
        except TokenRejected as exc:
            _usage_error(f"the controller refused the API token: {exc}; pass its token with "
                         "--token TEXT|env:NAME|file:PATH or QUORUS_TOKEN (the controller "
                         "keeps it in quorus-data/token)")
        except ControllerError as exc:
            if exc.status in (400, 413, 422):
                _usage_error(str(exc))
            _failed(f"error: {exc}")
        finally:
            client.close()
    except KeyboardInterrupt:
        click.echo("quorus: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


# -- cluster --------------------------------------------------------------------------------------


@click.group()
def cluster() -> None:
    """The controller quorum."""


@cluster.command("status")
@fleet_options
def cluster_status(controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """Leader, term, members, commit and applied index, agent and job counts."""
    with connected(controllers, token) as client:
        status = client.cluster_status()
    if as_json:
        _emit_json(status)
        return
    from quorus.core.cli.fleetview import print_cluster

    print_cluster(status)


@cluster.command("add-member")
@click.argument("node_id")
@click.argument("address", metavar="RAFT_ADDRESS")
@click.option("--agents", metavar="HOST:PORT", default=None,
              help="Where the new controller listens for agents (replicated to every "
                   "controller, so they redirect agents to it when it leads).")
@click.option("--http", "http", metavar="HOST:PORT", default=None,
              help="Where the new controller serves the REST API (replicated to every "
                   "controller, so they forward writes to it when it leads).")
@fleet_options
def cluster_add_member(node_id: str, address: str, agents: str | None, http: str | None,
                       controllers: tuple[str, ...], token: str | None,
                       as_json: bool) -> None:
    """Add controller NODE_ID, whose Raft port is RAFT_ADDRESS (HOST:PORT), to the quorum
    (it catches up as a learner, then votes). With --agents and --http, the other
    controllers learn where it serves agents and the REST API without editing their
    settings. Raft only."""
    with connected(controllers, token) as client:
        answer = client.add_member(node_id, address, agents=agents, http=http)
    if as_json:
        _emit_json(answer)
    else:
        click.echo(f"{node_id} ({address}) is joining the quorum; quorus cluster status "
                   "shows it")


@cluster.command("remove-member")
@click.argument("node_id")
@fleet_options
def cluster_remove_member(node_id: str, controllers: tuple[str, ...], token: str | None,
                          as_json: bool) -> None:
    """Remove controller NODE_ID (the leader included) from the quorum. Raft only."""
    with connected(controllers, token) as client:
        answer = client.remove_member(node_id)
    if as_json:
        _emit_json(answer)
    else:
        click.echo(f"{node_id} is leaving the quorum")


@cluster.command("transfer-leader")
@click.argument("node_id")
@fleet_options
def cluster_transfer_leader(node_id: str, controllers: tuple[str, ...], token: str | None,
                            as_json: bool) -> None:
    """Hand the leadership to controller NODE_ID. Raft only."""
    with connected(controllers, token) as client:
        answer = client.transfer_leadership(node_id)
    if as_json:
        _emit_json(answer)
    else:
        click.echo(f"leadership is moving to {node_id}")


# -- agents ---------------------------------------------------------------------------------------


@click.group()
def agents() -> None:
    """The agents of the fleet."""


@agents.command("list")
@fleet_options
def agents_list(controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """Every agent: state, connection, protocols, free slots, jobs, site, last heartbeat."""
    with connected(controllers, token) as client:
        found = client.list_agents()
    if as_json:
        _emit_json({"agents": found})
        return
    from quorus.core.cli.fleetview import print_agents

    print_agents(found)


@agents.command("show")
@click.argument("agent_id")
@fleet_options
def agents_show(agent_id: str, controllers: tuple[str, ...], token: str | None,
                as_json: bool) -> None:
    """One agent, with its running jobs and their progress."""
    with connected(controllers, token) as client:
        agent = client.get_agent(agent_id)
    if as_json:
        _emit_json(agent)
        return
    from quorus.core.cli.fleetview import print_agent

    print_agent(agent)


@agents.command("drain")
@click.argument("agent_id")
@click.option("--timeout", metavar="DURATION",
              help="How long its running transfers may take to finish (default: the "
                   "controller's, 30s).")
@fleet_options
def agents_drain(agent_id: str, timeout: str | None, controllers: tuple[str, ...],
                 token: str | None, as_json: bool) -> None:
    """Give AGENT_ID no new work; it finishes its transfers, then deregisters."""
    try:
        seconds = parse_duration(timeout, what="--timeout") if timeout is not None else None
    except ConfigurationError as exc:
        _usage_error(str(exc))
    with connected(controllers, token) as client:
        agent = client.drain_agent(agent_id, seconds)
    if as_json:
        _emit_json(agent)
        return
    if agent.get("state") == "deregistered":
        click.echo(f"{agent.get('id')}: deregistered (it was running nothing)")
        return
    running = len(agent.get("running_jobs") or [])
    click.echo(f"{agent.get('id')}: {agent.get('state')}; its {running} running "
               f"job{'s' if running != 1 else ''} may finish, then it deregisters")


# -- jobs -----------------------------------------------------------------------------------------


@click.group()
def jobs() -> None:
    """Transfer jobs run by the fleet."""


def _progress_kind(progress: str, as_json: bool) -> str:
    if progress != "auto":
        return progress
    if as_json:
        return "none"
    return "bar" if sys.stderr.isatty() else "plain"


def _follow(client: ControllerClient, job_id: str, kind: str, interval: float,
            timeout: float | None) -> dict[str, Any]:
    """Poll the job until it ends, showing it; exits 1 when ``timeout`` passes first."""
    from quorus.core.cli.fleetview import TERMINAL_STATES, job_display

    deadline = None if timeout is None else time.monotonic() + timeout
    with job_display(kind, job_id) as show:
        while True:
            job = client.get_job(job_id)
            show(job)
            if job.get("state") in TERMINAL_STATES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                _failed(f"job {job_id} is still {job.get('state')} after {timeout:g} s; "
                        f"it goes on: quorus jobs watch {job_id}")
            time.sleep(interval if deadline is None else
                       max(0.0, min(interval, deadline - time.monotonic())))


def _finish(job: Mapping[str, Any], as_json: bool) -> None:
    """Report a job that ended; exit 1 unless it completed."""
    from quorus.core.cli.fleetview import describe

    if as_json:
        _emit_json(job)
    elif job.get("state") == "completed":
        click.echo(describe(job), err=True)
    state = job.get("state")
    if state == "failed":
        _failed(f"job {job.get('id')} failed after {len(job.get('attempts') or [])} "
                f"attempt(s): {job.get('error')}")
    if state == "cancelled":
        _failed(f"job {job.get('id')} was cancelled: {job.get('error') or 'on request'}")


@contextmanager
def _interruptible(job_id: str) -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        click.echo(f"quorus: interrupted; job {job_id} goes on: quorus jobs watch {job_id}",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)


def _follow_options(command: F) -> F:
    command = click.option("--timeout", metavar="DURATION",
                           help="Give up following after this long (exit 1; the job goes on)."
                           )(command)
    command = click.option("--interval", default="1s", show_default=True, metavar="DURATION",
                           help="How often to ask the controller.")(command)
    command = click.option(
        "--progress", type=click.Choice(["auto", "bar", "plain", "none"]), default="auto",
        show_default=True,
        help="Progress on stderr: a bar on a terminal, plain lines otherwise (auto).")(command)
    return command


def _follow_settings(interval: str, timeout: str | None) -> tuple[float, float | None]:
    try:
        every = parse_duration(interval, what="--interval")
        limit = parse_duration(timeout, what="--timeout") if timeout is not None else None
    except ConfigurationError as exc:
        _usage_error(str(exc))
    if every <= 0:
        _usage_error(f"invalid --interval {interval!r}: must be greater than zero")
    return every, limit


@jobs.command("submit")
@click.argument("source", required=False)
@click.argument("destination", required=False)
@click.option("--from", "from_file", metavar="FILE",
              help="Submit every job of FILE instead (JSON lines, or a YAML list if named "
                   "*.yaml; each a POST /v1/jobs body; '-' reads standard input); the other "
                   "options are defaults for its jobs.")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=500, show_default=True,
              metavar="N", help="With --from: jobs per request.")
@click.option("--id", "job_id", metavar="ID",
              help="The job's id; submitting the same id again returns the same job.")
@click.option("--checksum", metavar="sha256:HEX", help="Expected SHA-256 of the file.")
@click.option("--size", metavar="SIZE", help="Expected size, e.g. 1048576 or 10MB.")
@click.option("--priority", type=int, default=0, show_default=True,
              help="Higher runs first.")
@click.option("--label", "labels", multiple=True, metavar="SELECTOR",
              help="Run only on agents whose labels match: key=value, key!=value, key or "
                   "!key (repeatable; all must hold).")
@click.option("--avoid-label", "avoid", multiple=True, metavar="SELECTOR",
              help="Never run on agents matching this selector (repeatable).")
@click.option("--require-site", metavar="region=R,datacenter=D,zone=Z",
              help="Run only on agents at this site.")
@click.option("--prefer-site", metavar="region=R,datacenter=D,zone=Z",
              help="Prefer agents at this site.")
@click.option("--max-attempts", type=click.IntRange(1, 100), metavar="N",
              help="Attempts in all, agent losses included (default: the controller's, 3).")
@click.option("--overwrite", type=click.Choice(["fail", "overwrite", "skip-same"]),
              help="If the destination exists: fail (the controller's default), overwrite, "
                   "or skip-same.")
@click.option("--bwlimit", metavar="RATE", help="Bandwidth limit, e.g. 50MB/s.")
@click.option("-o", "--option", "options", multiple=True, metavar="SCHEME.KEY=VALUE",
              help="Protocol option for the agent, e.g. -o sftp.password=env:SFTP_PASSWORD "
                   "(references are resolved on the agent).")
@click.option("--tenant", help="Tenant of the job (default: default).")
@click.option("--namespace", help="Namespace of the job (default: default).")
@click.option("--wait", is_flag=True, help="Follow the job until it ends; exit 1 unless it "
                                           "completes.")
@_follow_options
@fleet_options
def jobs_submit(
    source: str | None, destination: str | None, from_file: str | None, batch_size: int,
    job_id: str | None, checksum: str | None, size: str | None,
    priority: int, labels: tuple[str, ...], avoid: tuple[str, ...], require_site: str | None,
    prefer_site: str | None, max_attempts: int | None, overwrite: str | None,
    bwlimit: str | None, options: tuple[str, ...], tenant: str | None, namespace: str | None,
    wait: bool, progress: str, interval: str, timeout: str | None,
    controllers: tuple[str, ...], token: str | None, as_json: bool,
) -> None:
    """Queue a transfer of SOURCE to DESTINATION (URIs, or absolute paths on the agent).

    Prints the job's id (or, with --json, the job); with --wait, follows it to its end.
    With --from FILE, queues every job of the file, a batch at a time, and prints a table of
    them (exit 1 if the controller refused any).
    """
    if from_file is not None:
        if source is not None or destination is not None or job_id is not None or wait:
            _usage_error("--from takes the jobs from the file: give no SOURCE, DESTINATION, "
                         "--id or --wait with it")
        try:
            defaults = submission(
                "/", "/", job_id=None, checksum=checksum, size=size, priority=priority,
                labels=labels, avoid=avoid, require_site=require_site,
                prefer_site=prefer_site, max_attempts=max_attempts, overwrite=overwrite,
                bwlimit=bwlimit, options=options, tenant=tenant, namespace=namespace)
        except ConfigurationError as exc:
            _usage_error(str(exc))
        for key in ("source", "destination", "id"):
            del defaults[key]
        _submit_file(from_file, defaults, batch_size, controllers, token, as_json)
        return
    if source is None or destination is None:
        _usage_error("give SOURCE and DESTINATION, or --from FILE")
    try:
        body = submission(
            source, destination, job_id=job_id, checksum=checksum, size=size,
            priority=priority, labels=labels, avoid=avoid, require_site=require_site,
            prefer_site=prefer_site, max_attempts=max_attempts, overwrite=overwrite,
            bwlimit=bwlimit, options=options, tenant=tenant, namespace=namespace)
    except ConfigurationError as exc:
        _usage_error(str(exc))
    every, limit = _follow_settings(interval, timeout)
    with connected(controllers, token) as client, _interruptible(body["id"]):
        job = client.submit_job(body)
        if not wait:
            if as_json:
                _emit_json(job)
            else:
                click.echo(job["id"])
            return
        if not as_json:
            click.echo(job["id"])
        job = _follow(client, job["id"], _progress_kind(progress, as_json), every, limit)
    _finish(job, as_json)


def _submit_file(name: str, defaults: dict[str, Any], batch_size: int,
                 controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """``jobs submit --from``: every job of the file, ``batch_size`` per request."""
    from quorus.core.cli.jobfile import read_file, submit_entries

    try:
        entries = read_file(name, defaults)
    except ConfigurationError as exc:
        _usage_error(str(exc))
    with connected(controllers, token) as client:
        outcome = submit_entries(client, entries, batch_size)
        if outcome.error is not None and not outcome.results:
            raise outcome.error  # nothing went through: the command's usual exit
    if as_json:
        _emit_json(outcome.as_json())
    else:
        from quorus.core.cli.fleetview import print_batch

        print_batch(outcome.results)
    if outcome.error is not None:
        line = entries[len(entries) - outcome.unsent].line
        _failed(f"error: {outcome.error}; the jobs of {name} from line {line} on "
                f"({outcome.unsent}) may not have been submitted")
    if outcome.refused:
        _failed(f"{outcome.refused} of {len(entries)} jobs refused")


@jobs.command("watch")
@click.argument("job_id")
@_follow_options
@fleet_options
def jobs_watch(job_id: str, progress: str, interval: str, timeout: str | None,
               controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """Follow JOB_ID until it ends; exit 0 when it completed, 1 when it failed or was
    cancelled."""
    every, limit = _follow_settings(interval, timeout)
    with connected(controllers, token) as client, _interruptible(job_id):
        job = _follow(client, job_id, _progress_kind(progress, as_json), every, limit)
    _finish(job, as_json)


@jobs.command("list")
@click.option("--state", type=click.Choice(JOB_STATES), help="Only jobs in this state.")
@click.option("--agent", metavar="AGENT_ID", help="Only jobs that had an attempt on this agent.")
@click.option("--tenant", help="Only this tenant's jobs.")
@click.option("--namespace", help="Only jobs of this namespace.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many jobs (fetched page by page).")
@click.option("--all", "everything", is_flag=True, help="Every matching job, however many.")
@click.option("--cursor", metavar="CURSOR", help="Continue a listing where one stopped.")
@fleet_options
def jobs_list(state: str | None, agent: str | None, tenant: str | None,
              namespace: str | None, limit: int, everything: bool, cursor: str | None,
              controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """Jobs in submission order, with their state, agent and progress."""
    with connected(controllers, token) as client:
        found, next_cursor = client.list_jobs(
            limit=None if everything else limit, cursor=cursor, state=state, agent=agent,
            tenant=tenant, namespace=namespace)
    if as_json:
        _emit_json({"jobs": found, "next_cursor": next_cursor})
        return
    from quorus.core.cli.fleetview import print_jobs

    print_jobs(found, next_cursor)


@jobs.command("show")
@click.argument("job_id")
@fleet_options
def jobs_show(job_id: str, controllers: tuple[str, ...], token: str | None,
              as_json: bool) -> None:
    """One job: where it runs, its attempts, progress, and why it waits or failed."""
    with connected(controllers, token) as client:
        job = client.get_job(job_id)
    if as_json:
        _emit_json(job)
        return
    from quorus.core.cli.fleetview import print_job

    print_job(job)


@jobs.command("cancel")
@click.argument("job_id")
@click.option("--reason", help="Recorded as the job's error.")
@fleet_options
def jobs_cancel(job_id: str, reason: str | None, controllers: tuple[str, ...],
                token: str | None, as_json: bool) -> None:
    """Cancel JOB_ID; an agent running it is told to abort."""
    with connected(controllers, token) as client:
        job = client.cancel_job(job_id, reason)
    if as_json:
        _emit_json(job)
        return
    from quorus.core.cli.fleetview import describe

    click.echo(describe(job))


__all__ = ["agents", "cluster", "fleet_token", "jobs"]
