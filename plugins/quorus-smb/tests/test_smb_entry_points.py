"""The distribution registers its protocol under the ``smb`` scheme."""

from __future__ import annotations

from quorus.core.plugins import PROTOCOLS, PluginRegistry, registry
from quorus.protocols.smb import SmbProtocol


def test_entry_point_resolves_to_the_protocol_class() -> None:
    assert registry().load(PROTOCOLS, "smb") is SmbProtocol
    assert PluginRegistry().load(PROTOCOLS, "smb") is SmbProtocol
    assert "smb" in SmbProtocol.schemes


def test_plugin_listing_names_the_distribution() -> None:
    infos = {info.name: info for info in PluginRegistry().describe([PROTOCOLS])}
    assert infos["smb"].status == "loaded"
    assert infos["smb"].distribution == "quorus-smb"
