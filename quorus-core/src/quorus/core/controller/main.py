"""``quorus-controller``: run one controller.

With no arguments it is a single durable node (``standalone`` consensus) with its data in
``./quorus-data``, listening on loopback for agents and for the REST API; it prints both
addresses and where the token is. With ``--node-id``, ``--peers``, ``--data-dir``, the listen
addresses and ``--consensus raft`` it is a member of a quorum. ``--config FILE`` reads the
same settings from YAML (flags given on the command line win). ``--agent-tls-cert``,
``--agent-tls-key`` and ``--agent-tls-ca`` serve the agent port over mutual TLS;
``--agent-auth mtls`` identifies agents by their certificates. SIGTERM and SIGINT stop it
cleanly.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import click
from quorus.core import eventloop
from quorus.core.controller.probes import GC_PAUSES, GenerationalFreeze, freeze_startup
from quorus.core.controller.settings import ControllerSettings
from quorus.core.errors import ConfigurationError, QuorusError

log = logging.getLogger(__name__)


def load_config_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: the configuration must be a mapping")
    return data


async def serve(settings: ControllerSettings, out: Any = None) -> None:
    """Run a controller until SIGTERM or SIGINT."""
    from quorus.core.controller.server import ControllerServer

    out = out or sys.stdout
    server = ControllerServer(settings)
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        # Everything built to start (modules, the API, the state restored from disk) is out
        # of the collector's sight from now on, later full collections go through what is
        # new since the one before, and the pauses are measured (/metrics).
        GC_PAUSES.install()
        frozen = freeze_startup()
        log.info("%d objects of the start-up frozen out of garbage collection", frozen)
        freezing = GenerationalFreeze()
        freezing.install()
        freezing_scope = anyio.CancelScope()

        async def keep_freezing() -> None:
            with freezing_scope:
                await freezing.run()

        tg.start_soon(keep_freezing)
        token = (f"token file: {server.token_file}" + (" (created)" if server.token_created
                                                        else "")
                 if server.token_file is not None else "token: from the configuration")
        print(
            f"quorus-controller {settings.node_id} ({settings.consensus}) serving\n"
            f"  agents:   {settings.listen_agents}{_agent_security(settings)}\n"
            f"  REST API: http://{settings.listen_http}\n"
            f"  data:     {settings.data_dir.resolve()}\n"
            f"  {token}",
            file=out, flush=True,
        )
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                print(f"quorus-controller: {signal.Signals(signum).name}: stopping", file=out,
                      flush=True)
                server.stop()
                freezing_scope.cancel()
                break


def _agent_security(settings: ControllerSettings) -> str:
    if not settings.agent_tls:
        return f" (plain TCP, {settings.agent_auth} auth)"
    clients = ("client certificates from " + str(settings.agent_tls_ca)
               if settings.agent_tls_ca else "no client certificates")
    return f" (TLS, {clients}, {settings.agent_auth} auth)"


_FLAGS = ("node_id", "peers", "data_dir", "listen_agents", "listen_http", "listen_raft",
          "consensus", "cluster_token", "token", "heartbeat_interval", "agent_tls_cert",
          "agent_tls_key", "agent_tls_ca", "agent_auth")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
              help="YAML file with the settings below (flags win).")
@click.option("--node-id", help="This controller's id in the quorum.")
@click.option("--peers", help="Quorum members: id=host:port,... (their Raft addresses).")
@click.option("--data-dir", help="Where state and the token live (default ./quorus-data).")
@click.option("--listen-agents", help="host:port for agent connections.")
@click.option("--listen-http", help="host:port for the REST API.")
@click.option("--listen-raft", help="host:port for Raft peers (default: this node's peer entry).")
@click.option("--consensus", help="Consensus backend: standalone (default) or raft.")
@click.option("--cluster-token", help="Raft peers' shared token (value, env:NAME or file:PATH).")
@click.option("--token", help="Agents' and clients' token (value, env:NAME or file:PATH); "
              "default: the token file in the data directory, created on first start.")
@click.option("--heartbeat-interval", type=float, help="Seconds between agent heartbeats.")
@click.option("--agent-tls-cert", metavar="PEM",
              help="Serve the agent port over TLS with this certificate.")
@click.option("--agent-tls-key", metavar="PEM", help="The private key of --agent-tls-cert.")
@click.option("--agent-tls-ca", metavar="PEM",
              help="Require agents' certificates issued by this CA (mutual TLS).")
@click.option("--agent-auth", metavar="METHOD",
              help="How agents are authenticated: token (default) or mtls (their certificates).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def main(config_file: Path | None, log_level: str, **flags: Any) -> None:
    """Run a Quorus controller (see the module docstring)."""
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        values = load_config_file(config_file) if config_file is not None else {}
        values.update({k: v for k, v in flags.items() if k in _FLAGS and v is not None})
        settings = ControllerSettings.from_mapping(values)
        eventloop.run(serve, settings)
    except (QuorusError, OSError) as exc:
        click.echo(f"quorus-controller: {exc}", err=True)
        sys.exit(2)
    except BaseExceptionGroup as group:
        # An error raised in a task (corrupt data found while the state is restored, say)
        # reaches here wrapped by the task groups it went through.
        errors = _expected_errors(group)
        if errors is None:
            raise
        for error in errors:
            click.echo(f"quorus-controller: {error}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


def _expected_errors(group: BaseExceptionGroup[BaseException]) -> list[BaseException] | None:
    """The errors in ``group`` (however deeply nested) if they are all the expected kind
    (:class:`QuorusError`, :class:`OSError`), each once; None if anything else is there."""
    errors: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            inner = _expected_errors(error)
            if inner is None:
                return None
            errors.extend(inner)
        elif isinstance(error, (QuorusError, OSError)):
            errors.append(error)
        else:
            return None
    return list({str(error): error for error in errors}.values())


__all__ = ["load_config_file", "main", "serve"]
