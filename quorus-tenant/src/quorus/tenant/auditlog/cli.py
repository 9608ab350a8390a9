"""``quorus audit export|verify``: a tenant's audit trail on the controller quorum, over its
REST API. ``export`` streams the records as JSON lines (to ``--output FILE`` or standard
output) without holding them in memory; ``verify`` exits 1 and names the first broken record
when the chain does not verify. The controller options (``--controller``, ``--token``,
``--json``) and exit codes are the fleet commands'.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
from quorus.core.cli.fleet import EXIT_FAILED, connected, fleet_options, fleet_token

#: Seconds to wait for the next bytes of an export.
EXPORT_TIMEOUT = 60.0


@click.group()
def audit() -> None:
    """Tenants' hash-chained audit trails (on the controller quorum)."""


def _export_lines(controllers: list[str], token: str, params: dict[str, str]
                  ) -> Iterator[str]:
    """The export's lines from the first controller that answers it."""
    import httpx
    from quorus.core.cli.client import ControllerError, ControllerUnreachable, shown

    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    with httpx.Client(timeout=EXPORT_TIMEOUT) as http:
        for base in controllers:
            try:
                with http.stream("GET", base + "/v1/audit/export", params=params,
                                 headers=headers) as response:
                    if response.status_code == 503:
                        failures.append(f"{shown(base)}: unavailable")
                        continue
                    if not response.is_success:
                        response.read()
                        raise ControllerError(_message(response, base),
                                              status=response.status_code)
                    yield from response.iter_lines()
                    return
            except (httpx.ConnectError, httpx.ConnectTimeout):
                failures.append(f"{shown(base)}: connection refused or host unreachable")
    raise ControllerUnreachable(f"no controller answered the export ({'; '.join(failures)})")


def _message(response: Any, base: str) -> str:
    from quorus.core.cli.client import shown

    try:
        message = str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    return f"{message or response.reason_phrase} ({response.status_code} from {shown(base)})"


@audit.command("export")
@click.option("--tenant", "tenant_id", required=True,
              help="Whose records ('*': actions about no single tenant).")
@click.option("--from", "start", metavar="TIME",
              help="First time (seconds since the epoch, or ISO 8601 such as 2026-01-31).")
@click.option("--to", "end", metavar="TIME", help="End time, exclusive (as --from).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write to FILE (complete or not at all) instead of standard output.")
@fleet_options
def export_command(tenant_id: str, start: str | None, end: str | None, output: str | None,
                   controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """The tenant's audit records as JSON lines, oldest first."""
    params = {"tenant": tenant_id}
    if start:
        params["from"] = start
    if end:
        params["to"] = end
    with connected(controllers, token) as client:
        lines = _export_lines(client.controllers, fleet_token(token).reveal(), params)
        if output is None:
            _write(lines, sys.stdout)
            return
        target = Path(output)
        partial = target.with_name(target.name + ".partial")
        try:
            with partial.open("w", encoding="utf-8") as out:
                count = _write(lines, out)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        click.echo(f"{count} records written to {target}", err=True)


def _write(lines: Iterator[str], out: IO[str]) -> int:
    count = 0
    for line in lines:
        if line:
            out.write(line + "\n")
            count += 1
    out.flush()
    return count


@audit.command("verify")
@click.option("--tenant", "tenant_id", required=True,
              help="Whose chain ('*': actions about no single tenant).")
@fleet_options
def verify_command(tenant_id: str, controllers: tuple[str, ...], token: str | None,
                   as_json: bool) -> None:
    """Check the tenant's hash chain; exit 1 naming the first broken record if it is not
    intact."""
    with connected(controllers, token) as client:
        answer = client.request("GET", "/v1/audit/verify", params={"tenant": tenant_id})
    if as_json:
        click.echo(json.dumps(answer, indent=2, sort_keys=True))
    elif answer["ok"]:
        first = answer["first"]
        span = f" ({first}..{first + answer['records'] - 1})" if answer["records"] else ""
        click.echo(f"{tenant_id}: {answer['records']} records intact{span}")
    else:
        click.echo(f"{tenant_id}: broken at record {answer['broken_at']}: {answer['reason']}")
    if not answer["ok"]:
        sys.exit(EXIT_FAILED)


__all__ = ["audit", "export_command", "verify_command"]
