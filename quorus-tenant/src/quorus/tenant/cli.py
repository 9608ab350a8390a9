"""``quorus tenant apply|list|show|tree|suspend|activate|delete|effective-config|usage|report``:
tenants on the controller quorum, over its REST API.

``apply`` checks the YAML here first (every problem with file, line and column) and sends it;
the controllers check it again against their tenants. The controller options
(``--controller``, ``--token``, ``--json``) and exit codes are the fleet commands'.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
from quorus.core.cli.fleet import EXIT_USAGE, connected, fleet_options

REPORT_COLUMNS = ("date", "tenant", "submitted", "completed", "failed", "cancelled", "bytes",
                  "oversize")


def _emit(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def _path(tenant_id: str, *rest: str) -> str:
    return "/".join(("/v1/tenants", quote(tenant_id, safe=""), *rest))


def _call(controllers: tuple[str, ...], token: str | None, method: str, path: str,
          **kwargs: Any) -> Any:
    with connected(controllers, token) as client:
        return client.request(method, path, **kwargs)


@click.group()
def tenant() -> None:
    """Tenants: hierarchy, quotas, usage (on the controller quorum)."""


@tenant.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@fleet_options
def apply(file: str, controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """Add or replace the tenants of a TenantConfiguration FILE (one or several documents)."""
    from quorus.tenant.config import TenantConfigError, parse_configuration

    try:
        text = Path(file).read_text(encoding="utf-8")
        parse_configuration(text, file)
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"quorus: error: cannot read {file}: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except TenantConfigError as exc:
        click.echo(f"quorus: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    answer = _call(controllers, token, "PUT", "/v1/tenants", json={"yaml": text, "file": file})
    if as_json:
        _emit(answer)
    else:
        click.echo(f"applied: {', '.join(answer.get('applied', []))}")
        for notice in answer.get("notices", []):
            click.echo(f"quorus: note: {notice}", err=True)


@tenant.command("list")
@fleet_options
def list_(controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """Every tenant: id, parent, status, allocation."""
    found = _call(controllers, token, "GET", "/v1/tenants")["tenants"]
    if as_json:
        _emit(found)
        return
    for item in found:
        click.echo(f"{item['id']}  parent={item['parent'] or '-'}  {item['status']}  "
                   f"{item['allocation']}")


@tenant.command()
@click.argument("tenant_id")
@fleet_options
def show(tenant_id: str, controllers: tuple[str, ...], token: str | None,
         as_json: bool) -> None:
    """One tenant: its quotas, children, namespaces and today's and this month's usage."""
    view = _call(controllers, token, "GET", _path(tenant_id))
    if as_json:
        _emit(view)
        return
    click.echo(f"{view['id']}: {view['status']}, parent {view['parent'] or '-'}, "
               f"allocation {view['allocation']}")
    click.echo(f"  namespaces: {', '.join(view['namespaces']) or '-'}")
    click.echo(f"  children: {', '.join(view['children']) or '-'}")
    quotas = {k: v for k, v in view["quotas"].items() if v is not None}
    click.echo("  quotas: " + (", ".join(f"{k}={v}" for k, v in sorted(quotas.items()))
                               or "none"))
    click.echo(f"  running: {view['running']}, stored: {view['stored_bytes']} bytes")
    for period in ("day", "month"):
        usage = view["usage"][period]
        click.echo(f"  {usage['period']}: " + ", ".join(
            f"{k} {usage[k]}" for k in REPORT_COLUMNS[2:]))


@tenant.command()
@fleet_options
def tree(controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """The hierarchy of tenants."""
    roots = _call(controllers, token, "GET", "/v1/tenants/tree")["tree"]
    if as_json:
        _emit(roots)
        return

    def show_node(node: dict[str, Any], depth: int) -> None:
        suspended = " (suspended)" if node["status"] == "suspended" else ""
        click.echo(f"{'  ' * depth}{node['id']}{suspended}")
        for child in node["children"]:
            show_node(child, depth + 1)

    for root in roots:
        show_node(root, 0)


def _change(method: str, path: str, controllers: tuple[str, ...], token: str | None,
            as_json: bool, **kwargs: Any) -> None:
    answer = _call(controllers, token, method, path, **kwargs)
    if as_json:
        _emit(answer)
    else:
        click.echo(f"{answer['tenant']}: {answer['status']}")


@tenant.command()
@click.argument("tenant_id")
@click.option("--reason", default="", help="Why, for the record.")
@fleet_options
def suspend(tenant_id: str, reason: str, controllers: tuple[str, ...], token: str | None,
            as_json: bool) -> None:
    """Refuse new submissions of TENANT_ID and its descendants; running jobs finish."""
    _change("POST", _path(tenant_id, "suspend"), controllers, token, as_json,
            json={"reason": reason})


@tenant.command()
@click.argument("tenant_id")
@fleet_options
def activate(tenant_id: str, controllers: tuple[str, ...], token: str | None,
             as_json: bool) -> None:
    """Accept submissions of a suspended tenant again."""
    _change("POST", _path(tenant_id, "activate"), controllers, token, as_json)


@tenant.command()
@click.argument("tenant_id")
@fleet_options
def delete(tenant_id: str, controllers: tuple[str, ...], token: str | None,
           as_json: bool) -> None:
    """Remove a tenant that has no children and no unfinished jobs."""
    _change("DELETE", _path(tenant_id), controllers, token, as_json)


@tenant.command("effective-config")
@click.argument("tenant_id")
@click.option("--namespace", help="Include this namespace's overrides.")
@fleet_options
def effective_config(tenant_id: str, namespace: str | None, controllers: tuple[str, ...],
                     token: str | None, as_json: bool) -> None:
    """Every configuration value of TENANT_ID and where it comes from."""
    params = {"namespace": namespace} if namespace else None
    answer = _call(controllers, token, "GET", _path(tenant_id, "effective-config"),
                   params=params)
    if as_json:
        _emit(answer)
        return
    width = max((len(v["path"]) for v in answer["values"]), default=0)
    for value in answer["values"]:
        shown = json.dumps(value["value"])
        click.echo(f"{value['path']:<{width}}  {shown}  ({value['source']})")


def _period(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if re.fullmatch(r"day|month|\d{4}-\d{2}(-\d{2})?", value) is None:
        raise click.BadParameter("use day, month, a UTC day YYYY-MM-DD or a month YYYY-MM")
    return value


@tenant.command()
@click.argument("tenant_id")
@click.option("--period", default="day", show_default=True, callback=_period,
              metavar="day|month|YYYY-MM-DD|YYYY-MM",
              help="The current UTC day or month, or a given UTC day or month.")
@fleet_options
def usage(tenant_id: str, period: str, controllers: tuple[str, ...], token: str | None,
          as_json: bool) -> None:
    """Usage of TENANT_ID (its descendants included) in a day or month, against its
    quotas."""
    answer = _call(controllers, token, "GET", _path(tenant_id, "usage"),
                   params={"period": period})
    if as_json:
        _emit(answer)
        return
    counts = answer["usage"]
    click.echo(f"{answer['tenant']} {answer['period']}: " + ", ".join(
        f"{k} {counts[k]}" for k in REPORT_COLUMNS[2:]))
    click.echo(f"  running {answer['running']}, reserved {answer['reserved_bytes']} bytes, "
               f"stored {answer['stored_bytes']} bytes")
    for name, limit in sorted(answer["quotas"].items()):
        if limit is not None:
            click.echo(f"  {name}: {limit}")


@tenant.command()
@click.argument("tenant_id")
@click.option("--from", "start", required=True, metavar="YYYY-MM-DD", help="First day (UTC).")
@click.option("--to", "end", required=True, metavar="YYYY-MM-DD", help="Last day (UTC).")
@click.option("--format", "form", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@fleet_options
def report(tenant_id: str, start: str, end: str, form: str, controllers: tuple[str, ...],
           token: str | None, as_json: bool) -> None:
    """Usage per day of TENANT_ID and its descendants, for cost reports."""
    answer = _call(controllers, token, "GET", _path(tenant_id, "report"),
                   params={"from": start, "to": end, "format": "json"})
    if as_json or form == "json":
        _emit(answer["rows"])
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=REPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(answer["rows"])


__all__ = ["tenant"]
