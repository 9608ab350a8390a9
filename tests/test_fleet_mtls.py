"""Mutual TLS across real processes: three ``quorus-controller`` processes whose Raft links and
agent port require certificates from the fleet's CA, agents authenticated by ``mtls`` (their
identity is the name in their certificate, bound as a service account allowed to register
agents), a ``quorus-agent`` that runs a job to completion over TLS, and one with a certificate from another CA that the controllers refuse, both sides
saying why in their logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from quorus.core.testing.fixtures import payload_bytes
from quorus.core.testing.pki import TestCa

from tests.fleet_cluster import FleetCluster, completed_attempts, sha256_of, wait_for

pytest.importorskip("quorus.raft")
pytest.importorskip("quorus.tenant.mtls")
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class MtlsFleet(FleetCluster):
    """Every controller serves agents and Raft peers over mutual TLS with the fleet's CA."""

    def __init__(self, root: Path, ca: TestCa) -> None:
        super().__init__(root)
        self.ca = ca
        self.certs = {c: ca.issue(c, c) for c in self.ids}

    def config(self, node_id: str) -> Path:
        path = super().config(node_id)
        settings: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        cert = self.certs[node_id]
        settings.update({
            "agent_tls_cert": str(cert.cert), "agent_tls_key": str(cert.key),
            "agent_tls_ca": str(self.ca.ca_file), "agent_auth": "mtls",
        })
        settings["raft_options"].update({
            "tls_cert": str(cert.cert), "tls_key": str(cert.key), "tls_ca": str(self.ca.ca_file),
        })
        path.write_text(yaml.safe_dump(settings), encoding="utf-8")
        return path

    def start_tls_agent(self, agent_id: str, issuer: TestCa) -> None:
        cert = issuer.issue(f"agent-{agent_id}", agent_id)
        self.start_agent(agent_id, extra=("--tls-ca", str(self.ca.ca_file),
                                           "--tls-cert", str(cert.cert),
                                           "--tls-key", str(cert.key)))


async def test_a_job_runs_over_mutual_tls_and_a_rogue_agent_is_refused(tmp_path: Path) -> None:
    ca = TestCa(tmp_path / "pki", "Fleet CA")
    rogue = TestCa(tmp_path / "rogue", "Rogue CA")
    cluster = MtlsFleet(tmp_path, ca)
    source = tmp_path / "in.bin"
    source.write_bytes(payload_bytes(512 * 1024, seed=11))
    try:
        cluster.start_all()
        await cluster.leader()
        # The agent's certificate identity must be allowed to register agents where it serves.
        for path, body in (
            ("/v1/principals", {"name": "trusted", "tenant": "default",
                                "kind": "service-account"}),
            ("/v1/principals/trusted/roles", {"role": "transfer-admin", "tenant": "default"}),
        ):
            answer = await cluster.request("POST", path, json=body)
            assert answer is not None and answer.status_code in (200, 201), answer
        cluster.start_tls_agent("trusted", ca)
        cluster.start_tls_agent("intruder", rogue)
        await cluster.wait_agents("trusted")
        await cluster.submit({"id": "over-tls", "source": str(source),
                              "destination": str(tmp_path / "out" / "in.bin")})
        job = await cluster.wait_job("over-tls", ["completed"], within=30)
        assert [a["agent_id"] for a in completed_attempts(job)] == ["trusted"]
        assert job["sha256"] == sha256_of(source) == sha256_of(tmp_path / "out" / "in.bin")

        async def refused() -> bool:
            controllers = "".join(cluster.log(c) for c in cluster.ids)
            return ("agent connection from 127.0.0.1:" in controllers
                    and "the agent's certificate was not issued by the configured CA"
                    in controllers
                    and "the controller refused our certificate: it was not issued by a CA "
                    "the controller trusts" in cluster.agent_log("intruder"))

        await wait_for(refused, 20, "the intruder refused, and both sides saying why")
        agents = await cluster.get("/v1/agents")
        ids = {a["id"] for a in (agents["agents"] if isinstance(agents, dict) else agents)}
        assert "trusted" in ids and "intruder" not in ids
        assert cluster.agent_exit("intruder") is None  # it keeps trying, as certificates change
    finally:
        cluster.stop_everything()
