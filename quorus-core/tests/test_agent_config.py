"""The agent's settings: controller addresses, labels, the token and its default file, the
stable agent id, and the registration built from them and from the machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from quorus.core.agent import (
    DEFAULT_CONTROLLER_PORT,
    AgentConfig,
    parse_controllers,
    parse_labels,
    registration,
    resolve_token,
    stable_agent_id,
)
from quorus.core.agent.inventory import StatusMeter, loadable_protocols
from quorus.core.agentproto import AgentLocation, HealthState, TransferCounts
from quorus.core.errors import ConfigurationError
from quorus.core.plugins import PluginRegistry
from quorus.core.secrets import Secret


def test_controller_addresses() -> None:
    addresses = parse_controllers("10.0.0.1:7500, ctl-2 ,[::1]:7600,[fe80::1]")
    assert [a.address for a in addresses] == [
        "10.0.0.1:7500", f"ctl-2:{DEFAULT_CONTROLLER_PORT}", "::1:7600",
        f"fe80::1:{DEFAULT_CONTROLLER_PORT}",
    ]
    assert parse_controllers(["a:1", "b:2"])[1].address == "b:2"


@pytest.mark.parametrize("text", ["", " , ", "host:port", "host:1:2", ":7400", "h:0", "h:70000",
                                  "[::1", "[]:7400"])
def test_bad_controller_addresses(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_controllers(text)


def test_labels() -> None:
    assert parse_labels(["os=linux", " tier = gold ", "empty="]) == {
        "os": "linux", "tier": "gold", "empty": "",
    }
    with pytest.raises(ConfigurationError, match="key=value"):
        parse_labels(["=x"])


def test_token_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_token("literal").reveal() == "literal"
    monkeypatch.setenv("AGENT_TOKEN_FOR_TEST", "from-env")
    assert resolve_token("env:AGENT_TOKEN_FOR_TEST").reveal() == "from-env"
    with pytest.raises(ConfigurationError, match="quorus-data/token"):
        resolve_token(None, cwd=tmp_path)
    (tmp_path / "quorus-data").mkdir()
    (tmp_path / "quorus-data" / "token").write_text("written-by-the-controller\n")
    token = resolve_token(None, cwd=tmp_path)
    assert token.reveal() == "written-by-the-controller"
    assert "written-by" not in repr(token) + str(token)
    (tmp_path / "quorus-data" / "token").write_text("\n")
    with pytest.raises(ConfigurationError, match="empty"):
        resolve_token(None, cwd=tmp_path)


def test_the_agent_id_is_created_once_and_kept(tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = stable_agent_id(work)
    assert first == stable_agent_id(work)  # a restart keeps it
    assert (work / "agent-id").read_text().strip() == first
    assert stable_agent_id(work, "chosen") == "chosen"
    assert stable_agent_id(work) == "chosen"  # and a given one is kept from then on
    other = stable_agent_id(tmp_path / "other")
    assert other != first


def test_config_refuses_impossible_settings(tmp_path: Path) -> None:
    base = parse_controllers("c:1")
    with pytest.raises(ConfigurationError, match="1 or more"):
        AgentConfig(base, "a", Secret("t"), tmp_path, max_concurrent=0)
    with pytest.raises(ConfigurationError, match="at least one controller"):
        AgentConfig((), "a", Secret("t"), tmp_path)
    for method in ("", "two words", "a/b"):
        with pytest.raises(ConfigurationError, match="--auth-method: the name of the "
                           "controllers' auth method"):
            AgentConfig(base, "a", Secret("t"), tmp_path, auth_method=method)
    assert AgentConfig(base, "a", Secret("t"), tmp_path, auth_method="ldap-token.v2"
                       ).auth_method == "ldap-token.v2"


def test_registration_describes_the_agent_and_the_machine(tmp_path: Path) -> None:
    config = AgentConfig(
        parse_controllers("c:1"), "a-1", Secret("t"), tmp_path, max_concurrent=3,
        location=AgentLocation("dc", "z", "r", ("t1",)), labels={"k": "v"},
        bandwidth_limit=1_250_000,
    )
    register = registration(config)
    assert register.agent_id == "a-1"
    capabilities = register.capabilities
    assert {"file", "memory"} <= set(capabilities.protocols)
    assert capabilities.max_concurrent_transfers == 3
    assert capabilities.max_bandwidth_mbps == pytest.approx(10.0)
    assert register.location.datacenter == "dc"
    assert dict(register.labels) == {"k": "v"}
    assert register.resources.cpu.cores >= 1
    assert register.resources.memory.total_mb > 0
    assert register.resources.storage.available_gb > 0
    only = registration(AgentConfig(parse_controllers("c:1"), "a", Secret("t"), tmp_path,
                                    protocols=("file",)))
    assert only.capabilities.protocols == ("file",)


def test_a_disabled_protocol_plugin_is_not_advertised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUORUS_DISABLE_PLUGINS", "quorus.protocols:memory")
    schemes = loadable_protocols(PluginRegistry())
    assert "file" in schemes
    assert "memory" not in schemes


def test_status_meter_counts_transfers_and_reads_the_machine(tmp_path: Path) -> None:
    meter = StatusMeter(tmp_path, bandwidth_limit=1000)
    meter.sample(0.0, connected=True)
    meter.transfer_started()
    meter.transfer_started()
    meter.bytes_moved(500)
    meter.transfer_ended(ok=True)
    meter.transfer_ended(ok=None)
    meter.transfer_started()
    meter.transfer_ended(ok=False)
    metrics, health, unhealthy = meter.sample(1.0, connected=False)
    assert metrics.transfers == TransferCounts(active=0, completed=1, failed=1)
    assert metrics.network.bytes_transferred == 500
    assert metrics.network.utilization_percent == 50.0
    assert metrics.memory.available_mb > 0
    assert health.disk_space in (HealthState.HEALTHY, HealthState.DEGRADED)
    assert health.network_connectivity is HealthState.DEGRADED
    assert unhealthy is False


def test_the_console_script_resolves() -> None:
    from importlib import metadata

    from quorus.core.agent.main import main

    (script,) = [ep for ep in metadata.entry_points(group="console_scripts")
                 if ep.name == "quorus-agent"]
    assert script.load() is main
