"""``quorus-agent``: run a transfer agent that joins the controller quorum.

With no arguments it joins the controller on this machine (``127.0.0.1:7070``) with the token
that controller wrote to ``./quorus-data/token``, works in ``./quorus-agent`` and runs up to 4
transfers at once. SIGTERM (or Ctrl-C) drains it: no new work, running transfers get the drain
timeout to finish, then it deregisters and exits 0; a second signal stops it at once.

Over TLS (``--tls-ca``) it verifies the controllers' certificates; with ``--tls-cert`` and
``--tls-key`` it presents its own, and needs no token when the controller authenticates
agents by certificate (``agent_auth: mtls``).

Exit codes: 0 stopped after a drain; 1 stopped otherwise (e.g. a second signal); 2 usage error
(bad option, unreadable token or certificate, work directory in use).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import anyio
import click
from quorus.core import eventloop
from quorus.core.agent.config import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_TOKEN_FILE,
    DEFAULT_WORK_DIR,
    AgentConfig,
    parse_controllers,
    parse_labels,
    resolve_token,
    stable_agent_id,
)
from quorus.core.agent.runtime import AgentRuntime
from quorus.core.agentproto import AgentLocation
from quorus.core.allocator import tune_for_streaming
from quorus.core.errors import ConfigurationError
from quorus.core.secrets import Secret, resolve_secret
from quorus.core.units import parse_duration, parse_rate

EXIT_OK = 0
EXIT_STOPPED = 1
EXIT_USAGE = 2
LOCK_FILE = "agent.lock"

log = logging.getLogger("quorus.agent")


def _usage_error(message: str) -> NoReturn:
    click.echo(f"quorus-agent: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@contextlib.contextmanager
def work_dir_lock(work_dir: Path) -> Iterator[None]:
    """Hold the work directory for this process: two agents sharing one would share an id."""
    work_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(work_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigurationError(
                f"work directory {work_dir} is in use by another quorus-agent: give each agent "
                "its own --work-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


async def serve(runtime: AgentRuntime) -> str:
    """Run ``runtime``; the first SIGTERM/SIGINT drains it, the second stops it."""
    async with anyio.create_task_group() as tg:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                count = 0
                async for signum in signals:
                    count += 1
                    name = signal.Signals(signum).name
                    if count == 1:
                        log.info("%s: draining (send it again to stop at once)", name)
                        runtime.drain()
                    else:
                        runtime.stop(f"stopped by a second {name}")

        tg.start_soon(watch_signals)
        reason = await runtime.run()
        tg.cancel_scope.cancel()
    return reason


def _token(spec: str | None, *, certificate: str | None) -> Secret | None:
    """The token to present; none is needed when a certificate proves who the agent is and
    no token was given or written by a controller in this directory."""
    if spec is None and certificate is not None and not Path(DEFAULT_TOKEN_FILE).is_file():
        return None
    return resolve_token(spec)


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--controllers", metavar="HOST:PORT,...", default=f"127.0.0.1:{DEFAULT_CONTROLLER_PORT}",
              show_default=True, envvar="QUORUS_CONTROLLERS",
              help="Every controller of the quorum; the agent finds the leader itself.")
@click.option("--agent-id", metavar="ID",
              help="This agent's id (default: from the host name, created once and kept in the "
                   "work directory).")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_WORK_DIR, show_default=True,
              help="The agent's own directory (its id; its disk space is reported).")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=DEFAULT_MAX_CONCURRENT,
              show_default=True, help="Transfers run at once.")
@click.option("--bwlimit", metavar="RATE", help="Bandwidth limit per transfer, e.g. 50MB/s.")
@click.option("--datacenter", default="", help="Datacenter, for location-aware placement.")
@click.option("--zone", default="", help="Zone within the datacenter.")
@click.option("--region", default="", help="Region.")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Location tag (repeatable).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
              help="Label matched by jobs' affinity rules (repeatable).")
@click.option("--protocol", "protocols", multiple=True, metavar="SCHEME",
              help="Advertise only these schemes (default: every protocol plugin that loads).")
@click.option("--token", metavar="TEXT|env:NAME|file:PATH", envvar="QUORUS_AGENT_TOKEN",
              help="Token presented to the controllers (default: file:./quorus-data/token, "
                   "written by quorus-controller).")
@click.option("--auth-method", default="token", show_default=True, metavar="NAME",
              envvar="QUORUS_AGENT_AUTH_METHOD",
              help="The controllers' auth method the token is for: an installed one when the "
                   "controllers judge agents by it (their agent_auth).")
@click.option("--drain-timeout", default=f"{DEFAULT_DRAIN_TIMEOUT:g}s", show_default=True,
              metavar="DURATION", help="Time running transfers get to finish on a drain.")
@click.option("--tls-ca", metavar="PEM", envvar="QUORUS_AGENT_TLS_CA",
              help="Connect over TLS, trusting controllers whose certificates this CA issued.")
@click.option("--tls-cert", metavar="PEM", envvar="QUORUS_AGENT_TLS_CERT",
              help="This agent's certificate, presented to the controllers (needs --tls-ca).")
@click.option("--tls-key", metavar="PEM", envvar="QUORUS_AGENT_TLS_KEY",
              help="The private key of --tls-cert (unless the certificate file holds it).")
@click.option("--tls-key-password", metavar="TEXT|env:NAME|file:PATH",
              envvar="QUORUS_AGENT_TLS_KEY_PASSWORD", help="Password of an encrypted --tls-key.")
@click.option("--tls-check-hostname/--no-tls-check-hostname", default=True, show_default=True,
              help="Require the controller's certificate to name the address dialled.")
@click.option("--tenant", default="default", show_default=True, envvar="QUORUS_AGENT_TENANT",
              help="Serve only this tenant (and its descendants): a dedicated agent. "
                   "'default' serves every tenant that may use shared agents.")
@click.option("--namespace", default="default", show_default=True,
              help="The namespace of --tenant the agent belongs to.")
@click.option("-v", "--verbose", count=True, help="More log output (-v debug).")
@click.version_option(package_name="quorus-core", prog_name="quorus-agent")
def main(
    controllers: str,
    agent_id: str | None,
    work_dir: Path,
    max_concurrent: int,
    bwlimit: str | None,
    datacenter: str,
    zone: str,
    region: str,
    tags: tuple[str, ...],
    labels: tuple[str, ...],
    protocols: tuple[str, ...],
    token: str | None,
    auth_method: str,
    drain_timeout: str,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_key_password: str | None,
    tls_check_hostname: bool,
    tenant: str,
    namespace: str,
    verbose: int,
) -> None:
    """Run a Quorus transfer agent."""
    tune_for_streaming()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        work_dir = work_dir.absolute()
        with work_dir_lock(work_dir):
            config = AgentConfig(
                controllers=parse_controllers(controllers),
                agent_id=stable_agent_id(work_dir, agent_id),
                token=_token(token, certificate=tls_cert),
                work_dir=work_dir,
                max_concurrent=max_concurrent,
                location=AgentLocation(datacenter, zone, region, tuple(tags)),
                labels=parse_labels(labels),
                bandwidth_limit=parse_rate(bwlimit) if bwlimit else None,
                drain_timeout=parse_duration(drain_timeout),
                protocols=tuple(protocols) or None,
                tls_ca=tls_ca,
                tls_cert=tls_cert,
                tls_key=tls_key,
                tls_key_password=resolve_secret(tls_key_password),
                tls_check_hostname=tls_check_hostname,
                tenant=tenant,
                namespace=namespace,
                auth_method=auth_method,
            )
            log.info("agent %s joining %s (work dir %s, %d at once%s)", config.agent_id,
                     ", ".join(c.address for c in config.controllers), work_dir, max_concurrent,
                     "" if tenant == "default" else f", dedicated to tenant {tenant}")
            runtime = AgentRuntime(config)
            reason = eventloop.run(serve, runtime)
    except ConfigurationError as exc:
        _usage_error(str(exc))
    sys.exit(EXIT_OK if reason.startswith("drained") else EXIT_STOPPED)


__all__ = ["main", "serve", "work_dir_lock"]
