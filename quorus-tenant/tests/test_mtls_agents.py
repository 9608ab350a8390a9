"""The ``mtls`` method on a real controller's agent port (asyncio and trio): a controller
configured with ``agent_auth: mtls`` finds the method through the ``quorus.auth`` group, and an
agent's identity is the name in the certificate the TLS handshake verified (its common name,
or its DNS name with ``principal_from: san-dns``); a certificate naming another agent, or one
from another CA, gets no registration, and neither does an identity without the right to
register agents (``agents.register``, a transfer-admin binding) in the tenant it serves."""

from __future__ import annotations

import logging
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest
from quorus.core.agent import AgentConfig, AgentRuntime
from quorus.core.agentproto import AgentPhase, Backoff
from quorus.core.auth import Principal
from quorus.core.controller import JobState
from quorus.core.secrets import Secret
from quorus.core.testing.controller import (
    controller_address,
    eventually,
    running_agent,
    running_controller,
)
from quorus.core.testing.fixtures import anyio_backend, payload_bytes
from quorus.core.testing.pki import IssuedCertificate, TestCa
from quorus.tenant.access.commands import BindRole, CreatePrincipal
from quorus.tenant.mtls import MtlsAuth

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio

pytestmark = pytest.mark.anyio

CONTROLLER_LOG = "quorus.core.controller.agentlink"


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "pki")


def mtls(ca: TestCa, **options: Any) -> dict[str, Any]:
    controller = ca.issue("controller", "controller-1")
    return {"agent_tls_cert": str(controller.cert), "agent_tls_key": str(controller.key),
            "agent_tls_ca": str(ca.ca_file), "agent_auth": "mtls",
            "agent_auth_options": options}


def agent(server: Any, work: Path, ca: TestCa, cert: IssuedCertificate, agent_id: str,
          token: str | None = None) -> AbstractAsyncContextManager[AgentRuntime]:
    return running_agent(AgentConfig(
        controllers=(controller_address(server),), agent_id=agent_id,
        token=Secret(token) if token else None, work_dir=work,
        backoff=Backoff(initial=0.05, maximum=0.2), tls_ca=str(ca.ca_file),
        tls_cert=str(cert.cert), tls_key=str(cert.key),
    ))


async def may_register(server: Any, name: str, tenant: str = "default") -> None:
    """Make ``name`` (an agent's certificate identity) a service account allowed to register
    agents in ``tenant``."""
    now = time.time()
    await server.service.propose(CreatePrincipal(name, "service-account", tenant, now))
    await server.service.propose(BindRole(name, "transfer-admin", tenant, now))


async def test_the_agent_is_the_principal_its_certificate_names(tmp_path: Path, ca: TestCa
                                                               ) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(payload_bytes(100_000, seed=3))
    with anyio.fail_after(40):
        async with running_controller(tmp_path / "c", **mtls(ca)) as server:
            assert isinstance(server.agent_authenticator, MtlsAuth)
            assert server.agent_authenticator.options.ca == str(ca.ca_file)
            await may_register(server, "agent-1")
            async with agent(server, tmp_path / "a", ca, ca.issue("a", "agent-1"),
                             "agent-1") as runtime:
                await eventually(lambda: runtime.controller_id is not None)
                assert server.links["agent-1"].principal == Principal("agent-1", "mtls")
                job = await server.service.submit_job(str(source), str(tmp_path / "out.bin"))
                await eventually(lambda: server.state.jobs[job.id].state is JobState.COMPLETED)
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()


async def test_the_principal_may_come_from_the_dns_name(tmp_path: Path, ca: TestCa) -> None:
    cert = ca.issue("a", "ignored-cn", names=("agent-7.fleet.example",))
    with anyio.fail_after(30):
        async with running_controller(tmp_path / "c",
                                      **mtls(ca, principal_from="san-dns")) as server:
            await may_register(server, "agent-7.fleet.example")
            async with agent(server, tmp_path / "a", ca, cert,
                             "agent-7.fleet.example") as runtime:
                await eventually(lambda: runtime.controller_id is not None)
                await eventually(lambda: "agent-7.fleet.example" in server.state.agents)
                assert server.links["agent-7.fleet.example"].principal == Principal(
                    "agent-7.fleet.example", "mtls")


async def test_a_certificate_identity_without_the_right_is_not_registered(
    tmp_path: Path, ca: TestCa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with anyio.fail_after(30):
        async with running_controller(tmp_path / "c", **mtls(ca)) as server:
            await may_register(server, "agent-1", tenant="sales")  # not where it asks to serve
            async with agent(server, tmp_path / "a", ca, ca.issue("a", "agent-1"), "agent-1"):
                await eventually(lambda: any(
                    r.name == CONTROLLER_LOG and "agent-1 may not register agents in tenant "
                    "default" in r.getMessage() for r in caplog.records))
            assert "agent-1" not in server.state.agents


async def test_a_certificate_for_another_agent_is_refused_whatever_the_token(
    tmp_path: Path, ca: TestCa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with anyio.fail_after(30):
        async with running_controller(tmp_path / "c", **mtls(ca)) as server:
            # The controller's own token travels in the hello: mtls does not look at it.
            async with agent(server, tmp_path / "a", ca, ca.issue("a", "agent-1"), "agent-2",
                             token=server.token.reveal()) as runtime:
                await eventually(lambda: any(
                    r.name == CONTROLLER_LOG and "agent 'agent-2' presented a certificate for "
                    "'agent-1'" in r.getMessage() for r in caplog.records))
                assert runtime.controller_id is None
            assert server.links == {} and server.state.agents == {}


async def test_a_certificate_from_another_ca_is_refused(
    tmp_path: Path, ca: TestCa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rogue = TestCa(tmp_path / "rogue", "Rogue CA")
    with anyio.fail_after(30):
        async with running_controller(tmp_path / "c", **mtls(ca)) as server:
            async with agent(server, tmp_path / "a", ca, rogue.issue("a", "agent-1"),
                             "agent-1") as runtime:
                await eventually(lambda: any(
                    r.name == CONTROLLER_LOG and "was not issued by the configured CA"
                    in r.getMessage() for r in caplog.records))
                assert runtime.controller_id is None
            assert server.links == {}


async def test_a_certificate_that_expires_ends_the_agents_session(
    tmp_path: Path, ca: TestCa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    def logged(*words: str) -> bool:
        return any(r.name == CONTROLLER_LOG and all(w in r.getMessage() for w in words)
                   for r in caplog.records)

    with anyio.fail_after(40):
        async with running_controller(tmp_path / "c", **mtls(ca)) as server:
            await may_register(server, "agent-1")
            await may_register(server, "agent-2")
            brief = ca.issue("brief", "agent-1", valid_for=4)
            async with agent(server, tmp_path / "a", ca, brief, "agent-1") as runtime, \
                    agent(server, tmp_path / "b", ca, ca.issue("b", "agent-2"), "agent-2"):
                await eventually(lambda: {"agent-1", "agent-2"} <= set(server.links))
                kept = server.links["agent-2"]
                await eventually(lambda: logged(
                    "agent agent-1: session ended: its credentials are refused: the "
                    "certificate for 'agent-1' expired at"), within=20)
                assert "agent-1" not in server.links
                # It comes back with the same certificate: refused during the handshake now.
                await eventually(lambda: logged("refused", "the agent's certificate has "
                                                "expired"))
                assert "agent-1" not in server.links
                assert runtime.session.phase is not AgentPhase.ACTIVE
                assert server.links["agent-2"] is kept and kept.session.active
