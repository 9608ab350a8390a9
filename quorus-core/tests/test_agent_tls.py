"""Agent links over TLS with client certificates, with real certificates from a test CA, a
real controller and the real agent runtime on loopback (asyncio and trio): a job completes
over mutual TLS; plain TCP clients, certificates from another CA, expired certificates and
missing ones are refused with a log line saying which on the controller and a clear error
on the agent; an agent checks the controller's certificate; and a certificate-reading auth
method takes the agent's identity from the certificate the handshake verified, never from
what the agent sends."""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from quorus.core import tls
from quorus.core.agent import AgentConfig
from quorus.core.agentproto import Backoff
from quorus.core.auth import Principal
from quorus.core.controller import JobOptions, JobState, agentlink
from quorus.core.controller.agentlink import hello_credentials
from quorus.core.controller.server import ControllerServer
from quorus.core.controller.settings import ControllerSettings, split_address
from quorus.core.errors import ConfigurationError
from quorus.core.secrets import Secret
from quorus.core.testing.controller import (
    TOKEN,
    controller_address,
    eventually,
    running_agent,
    running_controller,
)
from quorus.core.testing.fixtures import payload_bytes
from quorus.core.testing.pki import IssuedCertificate, TestCa
from quorus.core.wire import FramedStream, Hello

pytestmark = pytest.mark.anyio


@dataclass
class Pki:
    ca: TestCa
    rogue: TestCa
    controller: IssuedCertificate
    agent: IssuedCertificate


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = TestCa(tmp_path / "pki")
    return Pki(ca, TestCa(tmp_path / "rogue", "Rogue CA"),
               ca.issue("controller", "controller-1"), ca.issue("agent", "agent-1"))


def mtls_settings(pki: Pki, **more: Any) -> dict[str, Any]:
    return {"agent_tls_cert": str(pki.controller.cert), "agent_tls_key": str(pki.controller.key),
            "agent_tls_ca": str(pki.ca.ca_file), **more}


def agent_config(server: ControllerServer, work: Path, *, ca: Path | None,
                 cert: IssuedCertificate | None, agent_id: str = "agent-1",
                 token: str | None = TOKEN, **more: Any) -> AgentConfig:
    return AgentConfig(
        controllers=(controller_address(server),), agent_id=agent_id,
        token=Secret(token) if token else None, work_dir=work, max_concurrent=2,
        backoff=Backoff(initial=0.05, maximum=0.2),
        tls_ca=str(ca) if ca else None, tls_cert=str(cert.cert) if cert else None,
        tls_key=str(cert.key) if cert else None, **more,
    )


def logged(caplog: pytest.LogCaptureFixture, logger: str, *fragments: str) -> bool:
    return any(r.name == logger and all(f in r.getMessage() for f in fragments)
               for r in caplog.records)


CONTROLLER_LOG = "quorus.core.controller.agentlink"
AGENT_LOG = "quorus.core.agent.runtime"


# -- a job over mutual TLS ------------------------------------------------------------------------


async def test_a_job_completes_over_mutual_tls_with_token_auth(tmp_path: Path, pki: Pki) -> None:
    data = payload_bytes(300_000, seed=7)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    with anyio.fail_after(40):
        async with running_controller(tmp_path / "c", **mtls_settings(pki)) as server:
            config = agent_config(server, tmp_path / "a", ca=pki.ca.ca_file, cert=pki.agent)
            async with running_agent(config) as runtime:
                await eventually(lambda: runtime.controller_id is not None)
                link = server.links["agent-1"]
                assert link.principal == Principal("token-holder", "token")
                certificate = link.verified[tls.PEER_CERTIFICATE]
                assert tls.peer_name(certificate) == "agent-1"
                job = await server.service.submit_job(
                    str(source), str(tmp_path / "out.bin"),
                    options=JobOptions(checksum=f"sha256:{sha}"))
                await eventually(
                    lambda: server.state.jobs[job.id].state is JobState.COMPLETED)
    assert hashlib.sha256((tmp_path / "out.bin").read_bytes()).hexdigest() == sha


# -- refusals on the controller's side ------------------------------------------------------------


async def test_a_plain_tcp_client_is_refused_with_a_log_line(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with anyio.fail_after(20):
        async with running_controller(tmp_path / "c", **mtls_settings(pki)) as server:
            stream = await anyio.connect_tcp(*split_address(server.settings.listen_agents))
            framed = FramedStream(stream)
            await framed.send(Hello("quorus-agent", (1,), "agent-1", "token",
                                    {"token": TOKEN}).to_wire())
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await stream.receive()
            await stream.aclose()
            await eventually(lambda: logged(caplog, CONTROLLER_LOG, "refused"))
            assert server.links == {}
    assert logged(caplog, CONTROLLER_LOG, "agent connection from 127.0.0.1:",
                  "the agent does not speak TLS (a plain TCP client?)")


@pytest.mark.parametrize(
    ("which", "controller_says", "agent_says"),
    [
        ("rogue", "the agent's certificate was not issued by the configured CA",
         "the controller refused our certificate: it was not issued by a CA the controller "
         "trusts"),
        ("expired", "the agent's certificate has expired",
         "the controller refused our certificate: it has expired"),
        ("none", "the agent presented no certificate",
         "the controller requires a client certificate and we presented none"),
    ],
)
async def test_an_agent_without_a_good_certificate_is_refused(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture, which: str,
    controller_says: str, agent_says: str,
) -> None:
    caplog.set_level(logging.INFO)
    certificate = {
        "rogue": pki.rogue.issue("rogue-agent", "agent-1"),
        "expired": pki.ca.issue("old-agent", "agent-1", expired=True),
        "none": None,
    }[which]
    with anyio.fail_after(30):
        async with running_controller(tmp_path / "c", **mtls_settings(pki)) as server:
            config = agent_config(server, tmp_path / "a", ca=pki.ca.ca_file, cert=certificate)
            async with running_agent(config) as runtime:
                await eventually(lambda: logged(caplog, CONTROLLER_LOG, controller_says)
                                 and logged(caplog, AGENT_LOG, agent_says))
                assert runtime.controller_id is None
            assert server.links == {} and "agent-1" not in server.state.agents
    refusal = next(r for r in caplog.records if controller_says in r.getMessage())
    assert refusal.levelno == logging.WARNING
    assert refusal.getMessage().startswith("agent connection from 127.0.0.1:")


# -- the agent checks the controller --------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "agent_says"),
    [
        ("rogue", "the controller's certificate was not issued by the configured CA"),
        ("expired", "the controller's certificate has expired"),
        ("other-name", "the controller's certificate does not name the address dialled"),
    ],
)
async def test_the_agent_refuses_a_controller_it_cannot_verify(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture, which: str, agent_says: str,
) -> None:
    caplog.set_level(logging.INFO)
    controller = {
        "rogue": pki.rogue.issue("rogue-controller", "controller-1"),
        "expired": pki.ca.issue("old-controller", "controller-1", expired=True),
        "other-name": pki.ca.issue("elsewhere", "controller-1", names=("elsewhere.example",)),
    }[which]
    settings = mtls_settings(pki, agent_tls_cert=str(controller.cert),
                             agent_tls_key=str(controller.key))
    with anyio.fail_after(30):
        async with running_controller(tmp_path / "c", **settings) as server:
            config = agent_config(server, tmp_path / "a", ca=pki.ca.ca_file, cert=pki.agent)
            async with running_agent(config) as runtime:
                await eventually(lambda: logged(caplog, AGENT_LOG, "cannot connect to",
                                                "TLS handshake failed", agent_says))
                assert runtime.controller_id is None
            assert server.links == {}


async def test_the_hostname_check_can_be_turned_off(tmp_path: Path, pki: Pki) -> None:
    controller = pki.ca.issue("elsewhere", "controller-1", names=("elsewhere.example",))
    settings = mtls_settings(pki, agent_tls_cert=str(controller.cert),
                             agent_tls_key=str(controller.key))
    with anyio.fail_after(30):
        async with running_controller(tmp_path / "c", **settings) as server:
            config = agent_config(server, tmp_path / "a", ca=pki.ca.ca_file, cert=pki.agent,
                                  tls_check_hostname=False)
            async with running_agent(config) as runtime:
                await eventually(lambda: runtime.controller_id is not None)


async def test_a_plain_agent_cannot_talk_to_a_tls_port(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with anyio.fail_after(30):
        async with running_controller(tmp_path / "c", **mtls_settings(pki)) as server:
            config = agent_config(server, tmp_path / "a", ca=None, cert=None)
            async with running_agent(config) as runtime:
                await eventually(lambda: logged(caplog, CONTROLLER_LOG, "does not speak TLS"))
                assert runtime.controller_id is None


# -- identity from the certificate ----------------------------------------------------------------


class CertificateNameAuth:
    """An auth method that, like ``mtls``, names the principal by the verified certificate."""

    method = "cert-name"

    def authenticate(self, credentials: Mapping[str, Any]) -> Principal | None:
        name = tls.peer_name(credentials.get(tls.PEER_CERTIFICATE))
        return Principal(name, self.method) if name else None


@pytest.fixture
def certificate_auth(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Mapping[str, Any]]]:
    """``agent_auth: cert-name`` resolves to :class:`CertificateNameAuth` (standing in for an
    installed ``quorus.auth`` plugin); the list records what it was configured with."""
    loaded: list[tuple[str, Mapping[str, Any]]] = []

    def load(method: str, options: Mapping[str, Any]) -> CertificateNameAuth:
        loaded.append((method, dict(options)))
        assert method == "cert-name"
        return CertificateNameAuth()

    monkeypatch.setattr(agentlink, "load_authenticator", load)
    return loaded


async def test_the_identity_comes_from_the_certificate(
    tmp_path: Path, pki: Pki, certificate_auth: list[tuple[str, Mapping[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings = mtls_settings(pki, agent_auth="cert-name", agent_auth_options={"x": 1})
    with anyio.fail_after(30):
        # No extensions: core alone lets every authenticated agent register (an authorizing
        # extension may ask more, see quorus-tenant's tests).
        async with running_controller(tmp_path / "c", extensions=[], **settings) as server:
            # No token at all: the certificate alone proves who the agent is.
            config = agent_config(server, tmp_path / "a", ca=pki.ca.ca_file, cert=pki.agent,
                                  token=None)
            async with running_agent(config) as runtime:
                await eventually(lambda: runtime.controller_id is not None)
                assert server.links["agent-1"].principal == Principal("agent-1", "cert-name")
            # A good certificate for someone else: the agent id is not its to choose.
            config = agent_config(server, tmp_path / "b", ca=pki.ca.ca_file, cert=pki.agent,
                                  agent_id="agent-2")
            async with running_agent(config) as runtime:
                await eventually(lambda: logged(
                    caplog, CONTROLLER_LOG, "agent 'agent-2' presented a certificate for "
                    "'agent-1': an agent's id must be the principal its credentials prove")
                    and logged(caplog, AGENT_LOG, "the controller closed the connection",
                               "agent-2"))
                assert runtime.controller_id is None
            assert "agent-2" not in server.links
    assert certificate_auth == [("cert-name", {"x": 1})]


async def test_without_a_certificate_the_method_proves_nothing(
    tmp_path: Path, pki: Pki, certificate_auth: list[tuple[str, Mapping[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    # TLS without client certificates: the token travels encrypted, but proves nothing to a
    # method that reads certificates.
    settings = mtls_settings(pki, agent_auth="cert-name", agent_tls_ca=None)
    with anyio.fail_after(30):
        async with running_controller(tmp_path / "c", **settings) as server:
            config = agent_config(server, tmp_path / "a", ca=pki.ca.ca_file, cert=None)
            async with running_agent(config):
                await eventually(lambda: logged(
                    caplog, CONTROLLER_LOG,
                    "the 'cert-name' auth method accepts no principal from no client certificate"))
            assert server.links == {}


class SharedSecretAuth:
    """An installed method that reads token-shaped credentials: one secret per team."""

    method = "shared-secret"

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self.secrets = dict(secrets)

    def authenticate(self, credentials: Mapping[str, Any]) -> Principal | None:
        token = credentials.get("token")
        team = next((t for t, s in self.secrets.items() if s == token), None)
        return Principal(team, self.method) if team else None


async def test_an_installed_method_that_reads_tokens_judges_the_agents_that_name_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    loaded: list[tuple[str, Mapping[str, Any]]] = []

    def load(method: str, options: Mapping[str, Any]) -> SharedSecretAuth:
        loaded.append((method, dict(options)))
        return SharedSecretAuth(options["secrets"])

    monkeypatch.setattr(agentlink, "load_authenticator", load)
    # Its principals are agents (a secret each), as a certificate's name is for mtls.
    data = payload_bytes(100_000, seed=3)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    with anyio.fail_after(30):
        async with running_controller(
            tmp_path / "c", extensions=[], agent_auth="shared-secret",
            agent_auth_options={"secrets": {"agent-1": "a1-secret", "agent-4": "a4-secret"}},
        ) as server:
            # The hello names the method: the token is judged by it, and a job runs.
            config = agent_config(server, tmp_path / "a", ca=None, cert=None,
                                  token="a1-secret", auth_method="shared-secret")
            async with running_agent(config) as runtime:
                await eventually(lambda: runtime.controller_id is not None)
                assert server.links["agent-1"].principal == Principal("agent-1", "shared-secret")
                job = await server.service.submit_job(str(source), str(tmp_path / "out.bin"))
                await eventually(lambda: server.state.jobs[job.id].state is JobState.COMPLETED)
            assert (tmp_path / "out.bin").read_bytes() == data
            # The same token sent for the default method is not this method's to read; a
            # wrong secret proves nothing; another agent's secret proves that agent, not this.
            for agent_id, method, token, why in (
                ("agent-2", "token", "a1-secret", "from no client certificate (its hello names "
                 "the 'token' method)"),
                ("agent-3", "shared-secret", "guess", "from the 'shared-secret' credentials it "
                 "sent"),
                ("agent-5", "shared-secret", "a4-secret", "proved to be 'agent-4': an agent's "
                 "id must be the principal its credentials prove"),
            ):
                config = agent_config(server, tmp_path / agent_id, ca=None, cert=None,
                                      agent_id=agent_id, token=token, auth_method=method)
                async with running_agent(config) as runtime:
                    await eventually(lambda a=agent_id, w=why: logged(  # type: ignore[misc]
                        caplog, CONTROLLER_LOG, f"agent {a!r}", w))
                    assert runtime.controller_id is None
                assert agent_id not in server.links
    assert loaded == [("shared-secret",
                       {"secrets": {"agent-1": "a1-secret", "agent-4": "a4-secret"}})]


def test_a_hello_cannot_forge_the_tls_credentials() -> None:
    forged = Hello("quorus-agent", (1,), "agent-9", "cert-name",
                   {tls.PEER_CERTIFICATE: "agent-9", "extra": "x"})
    verified = {tls.PEER_CERTIFICATE: {"subject": ((("commonName", "agent-1"),),)}}
    assert hello_credentials(forged, "cert-name", verified) == {**verified, "extra": "x"}
    assert hello_credentials(forged, "cert-name", {}) == {"extra": "x"}
    # A hello naming another method contributes nothing.
    token_hello = Hello("quorus-agent", (1,), "agent-9", "token", {"token": "t"})
    assert hello_credentials(token_hello, "cert-name", verified) == verified
    assert hello_credentials(token_hello, "token", {}) == {"token": "t"}


# -- configuration --------------------------------------------------------------------------------


def test_settings_name_what_is_missing(pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match="agent_tls_ca given without agent_tls_cert"):
        ControllerSettings(agent_tls_ca=str(pki.ca.ca_file))
    with pytest.raises(ConfigurationError, match="agent_auth mtls identifies agents"):
        ControllerSettings(agent_auth="mtls", agent_tls_cert=str(pki.controller.cert))
    with pytest.raises(ConfigurationError, match="agent_auth: the name of an auth method"):
        ControllerSettings(agent_auth="no such")
    with pytest.raises(ConfigurationError, match="agent_auth_options must be a mapping"):
        ControllerSettings.from_mapping({"agent_auth_options": "ca=x"})
    parsed = ControllerSettings.from_mapping({
        "agent-tls-cert": str(pki.controller.cert), "agent_tls_key": str(pki.controller.key),
        "agent_tls_ca": str(pki.ca.ca_file), "agent_auth": "mtls",
        "agent_auth_options": {"principal_from": "san-dns"},
    })
    assert parsed.agent_tls and parsed.agent_auth_options == {"principal_from": "san-dns"}


def test_unreadable_or_mismatched_files_are_named(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match=r"agent_tls_ca: '.*missing\.pem' is not a"):
        tls.server_context(pki.controller.cert, pki.controller.key,
                           ca=tmp_path / "missing.pem", setting="agent_tls")
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        tls.server_context(pki.controller.cert, pki.agent.key)
    with pytest.raises(ConfigurationError, match="holds no usable PEM certificate"):
        tls.client_context(pki.controller.key)
    with pytest.raises(ConfigurationError, match="a client certificate is for a TLS link"):
        AgentConfig(controllers=(controller_address_of("127.0.0.1:7070"),), agent_id="a",
                    token=None, work_dir=tmp_path, tls_cert=str(pki.agent.cert))
    with pytest.raises(ConfigurationError, match="no way to prove who it is"):
        AgentConfig(controllers=(controller_address_of("127.0.0.1:7070"),), agent_id="a",
                    token=None, work_dir=tmp_path, tls_ca=str(pki.ca.ca_file))


def test_an_encrypted_key_needs_its_password(tmp_path: Path, pki: Pki) -> None:
    locked = pki.ca.issue("locked", "controller-1", key_password="s3cret")
    ctx = tls.server_context(locked.cert, locked.key, ca=pki.ca.ca_file,
                             key_password=Secret("s3cret"))
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    with pytest.raises(ConfigurationError, match="password is right"):
        tls.server_context(locked.cert, locked.key, key_password=Secret("wrong"))
    assert tls.server_context(pki.controller.cert, pki.controller.key).verify_mode == ssl.CERT_NONE


def controller_address_of(address: str) -> Any:
    from quorus.core.agentproto import ControllerAddress

    return ControllerAddress(address, address)


# -- the command lines ----------------------------------------------------------------------------


def test_the_controller_refuses_unreadable_certificate_files(tmp_path: Path, pki: Pki) -> None:
    from click.testing import CliRunner
    from quorus.core.controller.main import main

    result = CliRunner().invoke(main, [
        "--data-dir", str(tmp_path / "data"), "--token", "t",
        "--agent-tls-cert", str(tmp_path / "missing.pem"), "--agent-tls-key",
        str(pki.controller.key), "--agent-tls-ca", str(pki.ca.ca_file), "--agent-auth", "token",
    ])
    assert result.exit_code == 2
    assert "agent_tls_cert: " in result.output and "missing.pem' is not a readable file" in (
        result.output)
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "data"), "--token", "t",
                                       "--agent-auth", "mtls"])
    assert result.exit_code == 2 and "agent_auth mtls identifies agents" in result.output


def test_the_agent_refuses_incomplete_or_unreadable_tls_options(tmp_path: Path, pki: Pki,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    from click.testing import CliRunner
    from quorus.core.agent.main import main

    monkeypatch.chdir(tmp_path)
    base = ["--work-dir", str(tmp_path / "work"), "--controllers", "127.0.0.1:9"]
    result = CliRunner().invoke(main, [*base, "--tls-cert", str(pki.agent.cert)])
    assert result.exit_code == 2 and "give --tls-ca" in result.output
    result = CliRunner().invoke(main, [*base, "--tls-ca", str(tmp_path / "nope.pem")])
    assert result.exit_code == 2
    assert "no token given" in result.output  # a CA alone proves nothing: a token is needed
    result = CliRunner().invoke(main, [*base, "--token", "t", "--tls-ca",
                                       str(tmp_path / "nope.pem")])
    assert result.exit_code == 2 and "tls_ca: " in result.output and "nope.pem" in result.output
    result = CliRunner().invoke(main, [*base, "--tls-ca", str(pki.ca.ca_file), "--tls-cert",
                                       str(pki.agent.cert), "--tls-key", str(pki.controller.key)])
    assert result.exit_code == 2 and "cannot be loaded" in result.output
