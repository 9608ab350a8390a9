"""``quorus``: transfer files and inspect the installation.

Exit codes: 0 success; 1 the transfer failed (source missing or unreadable, destination not
writable, verification failed, retries exhausted); 2 usage error (bad option or argument,
malformed URI or checksum, protocol not installed). The fleet commands (``cluster``,
``agents``, ``jobs``) talk to a controller; see :mod:`quorus.core.cli.fleet`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from typing import Any, NoReturn, cast

import click
from quorus.core import eventloop
from quorus.core.allocator import tune_for_streaming
from quorus.core.cli.options import parse_protocol_options
from quorus.core.cli.progress import progress_display
from quorus.core.engine import (
    OverwritePolicy,
    RetryPolicy,
    TransferEngine,
    TransferRequest,
    TransferResult,
    TransferStatus,
)
from quorus.core.errors import ConfigurationError, PluginError, QuorusError
from quorus.core.plugins import GROUPS, registry
from quorus.core.units import format_size, parse_duration, parse_rate

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _usage_error(message: str) -> NoReturn:
    """Exit 2 with a one-line message naming the bad input."""
    click.echo(f"quorus: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


class _QuorusGroup(click.Group):
    """The ``quorus`` group, whose fleet commands and plugins' commands are imported only once
    a command it does not hold yet is named, or the commands are listed: ``quorus transfer``
    then starts without importing the controller's client and every plugin's command line
    (FastAPI among them), about a third of its start-up time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._complete = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and not self._complete:
            self.complete()
            found = super().get_command(ctx, cmd_name)
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.complete()
        return super().list_commands(ctx)

    def complete(self) -> None:
        """Add the fleet commands, then the plugins' (which may not take their names)."""
        if self._complete:
            return
        self._complete = True
        from quorus.core.cli.fleet import agents, cluster, jobs

        for group in (cluster, agents, jobs):
            self.add_command(group)
        add_plugin_commands(self)


@click.group(cls=_QuorusGroup, context_settings=CONTEXT_SETTINGS)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="quorus-core", prog_name="quorus")
def cli(verbose: int) -> None:
    """Quorus: verified, resumable file transfers."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@cli.command()
@click.argument("source")
@click.argument("destination")
@click.option("--checksum", metavar="sha256:HEX", help="Expected SHA-256 of the file.")
@click.option("--size", "expected_size", metavar="SIZE|MIN..MAX",
              help="Expected size or size range, e.g. 1048576, 10MB..5GB.")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Retries after the first attempt (retryable failures only).")
@click.option("--retry-delay", default="1s", show_default=True,
              help="Delay before the first retry; doubles each time (with jitter).")
@click.option("--max-retry-delay", default="30s", show_default=True, help="Upper bound of the delay.")
@click.option("--bwlimit", metavar="RATE", help="Bandwidth limit, e.g. 50MB/s, 10M, 1GiB/s.")
@click.option("--overwrite", type=click.Choice([p.value for p in OverwritePolicy]),
              default=OverwritePolicy.OVERWRITE.value, show_default=True,
              help="If the destination exists: fail, overwrite, or skip-same (skip when it "
                   "already has the same SHA-256).")
@click.option("--no-resume", is_flag=True, help="Start over instead of continuing a partial file.")
@click.option("--no-create-dirs", is_flag=True, help="Fail if the destination directory is missing.")
@click.option("--mode", metavar="OCTAL", help="File mode of the destination, e.g. 640.")
@click.option("--timeout", metavar="DURATION", help="Time limit for each attempt, e.g. 10m.")
@click.option("--streams", type=click.IntRange(min=1), metavar="N",
              help="Read a large source (64 MiB or more) as N parallel ranged streams, still "
                   "written in order and verified by one SHA-256 (default: the protocol's choice).")
@click.option("-o", "--option", "options", multiple=True, metavar="SCHEME.KEY=VALUE",
              help="Protocol option, e.g. -o https.ca_bundle=ca.pem -o http.bearer_token=env:TOKEN.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the result.")
@click.option("--progress", type=click.Choice(["auto", "bar", "plain", "none"]), default="auto",
              show_default=True, help="Progress display: a bar on a terminal, plain lines, or none.")
def transfer(
    source: str,
    destination: str,
    checksum: str | None,
    expected_size: str | None,
    retries: int,
    retry_delay: str,
    max_retry_delay: str,
    bwlimit: str | None,
    overwrite: str,
    no_resume: bool,
    no_create_dirs: bool,
    mode: str | None,
    timeout: str | None,
    streams: int | None,
    options: tuple[str, ...],
    as_json: bool,
    progress: str,
) -> None:
    """Copy SOURCE to DESTINATION (paths or URIs), verifying SHA-256."""
    try:
        request = TransferRequest.create(
            source,
            destination,
            checksum=checksum,
            size=expected_size,
            retry=RetryPolicy(
                max_attempts=retries + 1,
                initial_delay=parse_duration(retry_delay, what="--retry-delay"),
                max_delay=parse_duration(max_retry_delay, what="--max-retry-delay"),
            ),
            overwrite=OverwritePolicy(overwrite),
            resume=not no_resume,
            create_directories=not no_create_dirs,
            mode=_parse_mode(mode),
            bandwidth_limit=parse_rate(bwlimit, what="--bwlimit") if bwlimit else None,
            attempt_timeout=parse_duration(timeout, what="--timeout") if timeout else None,
            streams=streams,
        )
        protocol_options = parse_protocol_options(options)
    except ConfigurationError as exc:
        _usage_error(str(exc))

    if progress == "auto":
        progress = "none" if as_json or not sys.stderr.isatty() else "bar"

    async def run() -> TransferResult:
        async with TransferEngine(protocol_options=protocol_options) as engine:
            # Resolve both protocols first: a missing plugin is a usage error, not a failure.
            engine.protocol(request.source).check_location(request.source)
            engine.protocol(request.destination).check_location(request.destination)
            with progress_display(progress, request) as on_progress:
                return await engine.transfer(request, on_progress=on_progress)

    try:
        result = eventloop.run(run)
    except (PluginError, ConfigurationError) as exc:
        _usage_error(str(exc))
    except KeyboardInterrupt:
        click.echo("quorus: interrupted; a rerun resumes from the partial file", err=True)
        sys.exit(130)

    if as_json:
        click.echo(json.dumps(result.as_dict(), sort_keys=True))
    elif result.ok:
        verb = "skipped (destination already identical)" if (
            result.status is TransferStatus.SKIPPED) else "transferred"
        resumed = f", resumed at {format_size(result.resumed_from)}" if result.resumed_from else ""
        click.echo(
            f"{verb} {result.source} -> {result.destination}: {format_size(result.bytes)} "
            f"in {result.seconds:.2f} s ({format_size(result.rate)}/s{resumed}), "
            f"attempts {result.attempts}\nsha256:{result.sha256}",
            err=True,
        )
    if not result.ok:
        if not as_json:
            click.echo(f"quorus: transfer failed: {result.error}", err=True)
        sys.exit(EXIT_FAILED)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def plugins(as_json: bool) -> None:
    """List installed plugins: group, name, distribution, version and status."""
    from rich.console import Console  # only this command draws a table
    from rich.table import Table

    infos = registry().describe(GROUPS)
    if as_json:
        click.echo(json.dumps([info.as_dict() for info in infos], indent=2))
        return
    table = Table(title="Quorus plugins", show_lines=False)
    for column in ("group", "name", "distribution", "version", "status"):
        table.add_column(column)
    for info in infos:
        status = info.status if info.error is None or info.status == "disabled" else (
            f"{info.status}: {info.error}")
        table.add_row(info.group, info.name, info.distribution or "?", info.version or "?", status)
    Console(highlight=False).print(table)


def _parse_mode(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text, 8)
    except ValueError:
        raise ConfigurationError(f"invalid --mode {text!r}: expected octal digits, e.g. 640") from None
    if not 0 <= value <= 0o7777:
        raise ConfigurationError(f"invalid --mode {text!r}: out of range")
    return value


def add_plugin_commands(group: click.Group) -> None:
    """Add the sub-commands hook plugins contribute (``quorus_cli_commands``) to ``group``. A
    name already taken is reported and skipped; a plugin whose hook fails leaves the others."""
    from quorus.core.hooks import plugin_manager

    hook = plugin_manager().hook.quorus_cli_commands
    for implementation in hook.get_hookimpls():
        try:
            commands = list(cast("Iterable[object]", implementation.function()))
        except Exception as exc:
            log.warning("plugin %r could not add its commands: %s", implementation.plugin_name, exc)
            continue
        for command in commands:
            if not isinstance(command, click.Command):
                log.warning("plugin %r returned %r, not a click command; left out",
                            implementation.plugin_name, command)
                continue
            if command.name is None or command.name in group.commands:
                log.warning("plugin %r: command %r is already taken; left out",
                            implementation.plugin_name, command.name)
                continue
            group.add_command(command)


def _drop_transfer_errors(record: logging.LogRecord) -> bool:
    return record.levelno < logging.ERROR


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    # The command prints a transfer's final outcome itself, as one line; the event log's
    # record of the same failure would only repeat it. Retry warnings still show. Installed
    # here, in the process's entry point, rather than in the command group, so that invoking
    # the group in-process (tests, embedding) leaves the logging of its host alone.
    tune_for_streaming()
    transfer_log = logging.getLogger("quorus.transfer")
    if _drop_transfer_errors not in transfer_log.filters:
        transfer_log.addFilter(_drop_transfer_errors)
    try:
        return cli.main(args=argv, prog_name="quorus", standalone_mode=True)
    except QuorusError as exc:  # anything not mapped above still gets a one-line message
        click.echo(f"quorus: {exc}", err=True)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
