"""Controller settings from YAML and flags: peers in both forms, this node's own addresses,
and clear refusals of unknown keys and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from quorus.core.controller.main import load_config_file
from quorus.core.controller.settings import ControllerSettings, PeerAddresses
from quorus.core.errors import ConfigurationError

YAML = """
node_id: c2
consensus: raft
data_dir: /var/lib/quorus
listen_agents: 127.0.0.1:7072
listen_http: 127.0.0.1:7082
heartbeat_interval: 5
peers:
  c1: {raft: 127.0.0.1:7401, agents: 127.0.0.1:7071, http: 127.0.0.1:7081}
  c2: {raft: 127.0.0.1:7402}
  c3: 127.0.0.1:7403
"""


def test_a_yaml_file_gives_the_same_settings_as_flags(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text(YAML)
    settings = ControllerSettings.from_mapping(load_config_file(path))
    assert settings.node_id == "c2"
    assert settings.heartbeat_interval == 5.0
    assert settings.data_dir == Path("/var/lib/quorus")
    assert settings.raft_members == {"c1": "127.0.0.1:7401", "c2": "127.0.0.1:7402",
                                     "c3": "127.0.0.1:7403"}
    assert settings.peer("c1") == PeerAddresses("127.0.0.1:7401", "127.0.0.1:7071",
                                                "127.0.0.1:7081")
    assert settings.peer("c2").http == "127.0.0.1:7082"  # its own listen address
    flags = ControllerSettings.from_mapping({
        "node-id": "c2", "consensus": "raft", "data-dir": "/var/lib/quorus",
        "listen-agents": "127.0.0.1:7072", "listen-http": "127.0.0.1:7082",
        "heartbeat-interval": "5",
        "peers": "c1=127.0.0.1:7401,c2=127.0.0.1:7402,c3=127.0.0.1:7403",
    })
    assert flags.raft_members == settings.raft_members
    assert flags.heartbeat_interval == settings.heartbeat_interval


def test_the_defaults_are_a_loopback_standalone_node() -> None:
    settings = ControllerSettings.from_mapping({})
    assert settings.consensus == "standalone"
    assert settings.data_dir == Path("quorus-data")
    assert settings.listen_agents.startswith("127.0.0.1:")
    assert settings.listen_http.startswith("127.0.0.1:")
    assert settings.token is None  # generated in the data directory


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"colour": "blue"}, "unknown setting 'colour'"),
        ({"listen_http": "localhost"}, "listen_http"),
        ({"heartbeat_interval": "soon"}, "heartbeat_interval"),
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"missed_heartbeats": True}, "missed_heartbeats"),
        ({"peers": "c1"}, "peers"),
        ({"peers": {"c1": {"raft": "x:1", "ssh": "y:2"}}}, "unknown key"),
        ({"consensus": "raft", "node_id": "c9", "peers": "c1=127.0.0.1:1"}, "c9"),
    ],
)
def test_bad_settings_are_refused_with_the_key_named(
    values: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        ControllerSettings.from_mapping(values)


def test_a_config_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigurationError, match="mapping"):
        load_config_file(path)
    path.write_text("a: [unclosed\n")
    with pytest.raises(ConfigurationError, match="YAML"):
        load_config_file(path)
