"""``quorus agreement record|list|show|revoke``: data-sharing agreements between tenants, on the
controller quorum over its REST API.

The controller options (``--controller``, ``--token``, ``--json``) and exit codes are the fleet
commands'. Times are seconds since the epoch or ISO 8601 (``2026-01-31``,
``2026-01-31T12:00:00Z``), UTC unless they say otherwise.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click
from quorus.core.cli.fleet import connected, fleet_options

STATUSES = ("pending", "active", "expired", "revoked")


def _emit(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def _path(agreement_id: str, *rest: str) -> str:
    return "/".join(("/v1/agreements", quote(agreement_id, safe=""), *rest))


def _call(controllers: tuple[str, ...], token: str | None, method: str, path: str,
          **kwargs: Any) -> Any:
    with connected(controllers, token) as client:
        return client.request(method, path, **kwargs)


def _time(text: str | None) -> float | str | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _direction(view: dict[str, Any]) -> str:
    arrow = "<->" if view["mutual"] else "->"
    return f"{view['provider']} {arrow} {view['recipient']}"


def _line(view: dict[str, Any]) -> str:
    until = view["expires_at_iso"] or "until revoked"
    return (f"{view['id']}  {_direction(view)}  {view['status']}  "
            f"from {view['valid_from_iso']}  to {until}")


@click.group()
def agreement() -> None:
    """Data-sharing agreements between tenants (on the controller quorum)."""


@agreement.command()
@click.argument("agreement_id", metavar="ID")
@click.option("--provider", required=True, help="The tenant whose data is shared.")
@click.option("--recipient", required=True, help="The tenant it is shared with.")
@click.option("--mutual", is_flag=True, help="Each tenant may share with the other.")
@click.option("--purpose", default="", help="What the data is shared for.")
@click.option("--classification", help="The data classification it covers (recorded).")
@click.option("--valid-from", metavar="TIME", help="Start (default: now).")
@click.option("--expires", metavar="TIME", help="End (default: until revoked).")
@fleet_options
def record(agreement_id: str, provider: str, recipient: str, mutual: bool, purpose: str,
           classification: str | None, valid_from: str | None, expires: str | None,
           controllers: tuple[str, ...], token: str | None, as_json: bool) -> None:
    """Record agreement ID: PROVIDER may share its data with RECIPIENT."""
    view = _call(controllers, token, "POST", "/v1/agreements", json={
        "id": agreement_id, "provider": provider, "recipient": recipient, "mutual": mutual,
        "purpose": purpose, "classification": classification,
        "valid_from": _time(valid_from), "expires_at": _time(expires)})
    if as_json:
        _emit(view)
    else:
        click.echo(f"recorded agreement {view['id']}: {_direction(view)}, {view['status']}")


@agreement.command("list")
@click.option("--tenant", help="Only the agreements naming this tenant.")
@click.option("--status", type=click.Choice(STATUSES), help="Only those with this status now.")
@fleet_options
def list_(tenant: str | None, status: str | None, controllers: tuple[str, ...],
          token: str | None, as_json: bool) -> None:
    """The agreements naming a tenant you may read: id, direction, status, validity."""
    params = {k: v for k, v in (("tenant", tenant), ("status", status)) if v}
    found = _call(controllers, token, "GET", "/v1/agreements", params=params or None)
    if as_json:
        _emit(found["agreements"])
        return
    for item in found["agreements"]:
        click.echo(_line(item))


@agreement.command()
@click.argument("agreement_id", metavar="ID")
@fleet_options
def show(agreement_id: str, controllers: tuple[str, ...], token: str | None,
         as_json: bool) -> None:
    """One agreement with who recorded (and revoked) it."""
    view = _call(controllers, token, "GET", _path(agreement_id))
    if as_json:
        _emit(view)
        return
    click.echo(_line(view))
    click.echo(f"  recorded {view['recorded_at_iso']} by {view['recorded_by'] or '-'}")
    for label, name in (("purpose", "purpose"), ("classification", "classification")):
        if view[name]:
            click.echo(f"  {label}: {view[name]}")
    if view["revoked_at"] is not None:
        because = f": {view['revoke_reason']}" if view["revoke_reason"] else ""
        click.echo(f"  revoked {view['revoked_at_iso']} by {view['revoked_by'] or '-'}"
                   f"{because}")


@agreement.command()
@click.argument("agreement_id", metavar="ID")
@click.option("--reason", default="", help="Why (recorded with it).")
@fleet_options
def revoke(agreement_id: str, reason: str, controllers: tuple[str, ...], token: str | None,
           as_json: bool) -> None:
    """End agreement ID now: workflows naming it are refused from now on."""
    view = _call(controllers, token, "POST", _path(agreement_id, "revoke"),
                 json={"reason": reason})
    if as_json:
        _emit(view)
    else:
        click.echo(f"revoked agreement {view['id']} ({_direction(view)})")


__all__ = ["agreement"]
