"""``quorus principal create|list|show|delete|token issue|token revoke|bind|unbind``: users and
service accounts, their API tokens and roles, on the controller quorum over its REST API.

The controller options (``--controller``, ``--token``, ``--json``) and exit codes are the fleet
commands'. ``token issue`` prints the token once: the controllers keep only its hash.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click
from quorus.core.cli.fleet import connected, fleet_options

KINDS = ("user", "service-account")


def _emit(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def _path(name: str, *rest: str) -> str:
    return "/".join(("/v1/principals", quote(name, safe=""), *(quote(r, safe="") for r in rest)))


def _call(controllers: tuple[str, ...], token: str | None, method: str, path: str,
          **kwargs: Any) -> Any:
    with connected(controllers, token) as client:
        return client.request(method, path, **kwargs)


def _roles(view: dict[str, Any]) -> str:
    return ", ".join(f"{r['role']}@{r['tenant']}" + (f"/{r['namespace']}" if r["namespace"]
                                                     else "")
                     for r in view["roles"]) or "-"


@click.group()
def principal() -> None:
    """Users and service accounts: API tokens and roles (on the controller quorum)."""


@principal.command()
@click.argument("name")
@click.option("--tenant", required=True, help="The tenant it belongs to (whose admins manage "
              "it).")
@click.option("--kind", type=click.Choice(KINDS), default="user", show_default=True)
@fleet_options
def create(name: str, tenant: str, kind: str, controllers: tuple[str, ...], token: str | None,
           as_json: bool) -> None:
    """Create principal NAME in a tenant, with no token and no role yet."""
    view = _call(controllers, token, "POST", "/v1/principals",
                 json={"name": name, "tenant": tenant, "kind": kind})
    if as_json:
        _emit(view)
    else:
        click.echo(f"created {view['kind']} {view['name']} in tenant {view['tenant']}")


@principal.command("list")
@click.option("--tenant", help="Only the principals of this tenant.")
@fleet_options
def list_(tenant: str | None, controllers: tuple[str, ...], token: str | None,
          as_json: bool) -> None:
    """The principals you administer: name, kind, tenant, roles."""
    params = {"tenant": tenant} if tenant else None
    found = _call(controllers, token, "GET", "/v1/principals", params=params)["principals"]
    if as_json:
        _emit(found)
        return
    for item in found:
        click.echo(f"{item['name']}  {item['kind']}  tenant={item['tenant']}  "
                   f"roles={_roles(item)}")


@principal.command()
@click.argument("name")
@fleet_options
def show(name: str, controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """One principal: its roles and tokens (never their secrets)."""
    view = _call(controllers, token, "GET", _path(name))
    if as_json:
        _emit(view)
        return
    click.echo(f"{view['name']}: {view['kind']} of tenant {view['tenant']}")
    click.echo(f"  roles: {_roles(view)}")
    for item in view["tokens"]:
        status = "revoked" if item["revoked"] else "expired" if item["expired"] else "active"
        expires = item["expires_at"] if item["expires_at"] is not None else "never"
        click.echo(f"  token {item['token_id']}: {status}, expires {expires}")


@principal.command()
@click.argument("name")
@fleet_options
def delete(name: str, controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """Delete principal NAME: its tokens stop working at once."""
    answer = _call(controllers, token, "DELETE", _path(name))
    if as_json:
        _emit(answer)
    else:
        click.echo(f"deleted {answer['deleted']}")


@principal.group("token")
def token_group() -> None:
    """A principal's API tokens."""


@token_group.command("issue")
@click.argument("name")
@click.option("--ttl", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Expire after this many seconds (default: until revoked).")
@fleet_options
def issue(name: str, ttl: float | None, controllers: tuple[str, ...], token: str | None,
          as_json: bool) -> None:
    """A new API token for NAME, printed once: store it now."""
    answer = _call(controllers, token, "POST", _path(name, "tokens"),
                   json={"ttl_seconds": ttl})
    if as_json:
        _emit(answer)
        return
    click.echo(answer["token"])
    click.echo(f"token id {answer['token_id']} of {answer['principal']}: this is the only "
               "time it is shown", err=True)


@token_group.command("revoke")
@click.argument("name")
@click.argument("token_id")
@fleet_options
def revoke(name: str, token_id: str, controllers: tuple[str, ...], token: str | None,
           as_json: bool) -> None:
    """Refuse token TOKEN_ID of NAME from now on."""
    answer = _call(controllers, token, "DELETE", _path(name, "tokens", token_id))
    if as_json:
        _emit(answer)
    else:
        click.echo(f"revoked token {answer['token_id']} of {answer['principal']}")


def _role_options(command: Any) -> Any:
    command = click.option("--namespace", help="Only this namespace of the tenant.")(command)
    command = click.option("--tenant", required=True,
                           help="The tenant (its namespaces and descendants), or '*' for "
                                "every tenant.")(command)
    return click.option("--role", required=True,
                        help="viewer, transfer-user or transfer-admin.")(command)


def _change_role(method: str, name: str, role: str, tenant: str, namespace: str | None,
                 controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    view = _call(controllers, token, method, _path(name, "roles"),
                 json={"role": role, "tenant": tenant, "namespace": namespace})
    if as_json:
        _emit(view)
    else:
        click.echo(f"{view['name']}: {_roles(view)}")


@principal.command()
@click.argument("name")
@_role_options
@fleet_options
def bind(name: str, role: str, tenant: str, namespace: str | None,
         controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """Grant NAME a role in a tenant or one of its namespaces."""
    _change_role("POST", name, role, tenant, namespace, controllers, token, as_json)


@principal.command()
@click.argument("name")
@_role_options
@fleet_options
def unbind(name: str, role: str, tenant: str, namespace: str | None,
           controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """Take back a role binding of NAME, given as it was bound."""
    _change_role("DELETE", name, role, tenant, namespace, controllers, token, as_json)


__all__ = ["principal"]
