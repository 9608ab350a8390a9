"""``quorus principal ...`` against a real in-process controller: create, bind, issue a token
(printed once) that then works, show, list, unbind, revoke, delete; errors exit non-zero with
the controller's reason; and the plugin contributes the access module, extension and group."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio
import httpx
import pytest
from click.testing import CliRunner, Result
from quorus.core.testing.controller import TOKEN, running_controller
from quorus.core.testing.fixtures import anyio_backend
from quorus.tenant import plugin
from quorus.tenant.access import AccessExtension, AccessStateModule
from quorus.tenant.access.cli import principal
from quorus.tenant.routes import TenantExtension

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio

TENANTS = ("apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata:\n  name: acme\n"
           "  namespace: finance\nspec: {}\n")


def test_the_plugin_contributes_the_access_module_extension_and_commands() -> None:
    modules = plugin.quorus_controller_state_modules()
    extensions = plugin.quorus_controller_extensions()
    assert [m.name for m in modules if isinstance(m, AccessStateModule)] == ["access"]
    assert [e.name for e in extensions if isinstance(e, AccessExtension)] == ["access"]
    assert principal in plugin.quorus_cli_commands()
    assert sorted(principal.commands) == ["bind", "create", "delete", "list", "show", "token",
                                          "unbind"]


@pytest.mark.anyio
async def test_the_principal_commands_over_the_rest_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quorus.core.hooks import new_plugin_manager

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin)
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: manager)
    async with running_controller(tmp_path / "c",
                                  extensions=[TenantExtension(), AccessExtension()]) as server:
        base = f"http://{server.settings.listen_http}"
        where = ["--controller", base, "--token", TOKEN]
        access = server.state.modules["access"]
        assert isinstance(access, AccessStateModule)

        async def run(*args: str) -> Result:
            def invoke(arguments: Sequence[str]) -> Result:
                return CliRunner().invoke(principal, [*arguments, *where])

            return await anyio.to_thread.run_sync(invoke, list(args))

        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            applied = await http.put("/v1/tenants", json={"yaml": TENANTS},
                                     headers={"Authorization": f"Bearer {TOKEN}"})
            assert applied.status_code == 200, applied.text

            created = await run("create", "ci-bot", "--tenant", "acme", "--kind",
                                "service-account")
            assert created.exit_code == 0, created.output
            assert created.output.strip() == "created service-account ci-bot in tenant acme"
            bound = await run("bind", "ci-bot", "--role", "transfer-user", "--tenant", "acme",
                              "--namespace", "finance")
            assert bound.output.strip() == "ci-bot: transfer-user@acme/finance"
            unknown = await run("bind", "ci-bot", "--role", "owner", "--tenant", "acme")
            assert unknown.exit_code != 0
            assert "use one of viewer, transfer-user, transfer-admin" in unknown.output
            assert len(access.bindings) == 1

            issued = await run("token", "issue", "ci-bot", "--ttl", "3600")
            assert issued.exit_code == 0, issued.output
            text = issued.stdout.strip()
            assert text.startswith("qrs_") and "only time it is shown" in issued.stderr
            as_bot = {"Authorization": f"Bearer {text}"}
            job = await http.post("/v1/jobs", headers=as_bot, json={
                "source": "/data/tenants/acme/a", "destination": "/data/tenants/acme/b",
                "tenant": "acme", "namespace": "finance"})
            assert job.status_code == 201, job.text
            elsewhere = await http.post("/v1/jobs", headers=as_bot, json={
                "source": "/data/tenants/acme/a", "destination": "/data/tenants/acme/b",
                "tenant": "acme"})
            assert elsewhere.status_code == 403

            (token_id,) = access.tokens
            shown = await run("show", "ci-bot")
            assert shown.output.splitlines() == [
                "ci-bot: service-account of tenant acme",
                "  roles: transfer-user@acme/finance",
                f"  token {token_id}: active, expires {access.tokens[token_id].expires_at}"]
            listed = await run("list", "--tenant", "acme")
            assert listed.output.strip() == ("ci-bot  service-account  tenant=acme  "
                                             "roles=transfer-user@acme/finance")
            unbound = await run("unbind", "ci-bot", "--role", "transfer-user", "--tenant",
                                "acme", "--namespace", "finance")
            assert unbound.output.strip() == "ci-bot: -" and access.bindings == []
            revoked = await run("token", "revoke", "ci-bot", token_id)
            assert revoked.output.strip() == f"revoked token {token_id} of ci-bot"
            assert (await http.get("/v1/jobs", headers=as_bot)).status_code == 401
            deleted = await run("delete", "ci-bot")
            assert deleted.output.strip() == "deleted ci-bot" and access.principals == {}
            missing = await run("show", "ci-bot")
            assert missing.exit_code != 0 and "no principal 'ci-bot'" in missing.output
