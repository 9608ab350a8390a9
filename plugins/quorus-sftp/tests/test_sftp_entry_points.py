"""The distribution registers its protocol under the ``sftp`` scheme."""

from __future__ import annotations

from quorus.core.plugins import PROTOCOLS, PluginRegistry, registry
from quorus.protocols.sftp import SftpProtocol


def test_entry_point_resolves_to_the_protocol_class() -> None:
    assert registry().load(PROTOCOLS, "sftp") is SftpProtocol
    assert PluginRegistry().load(PROTOCOLS, "sftp") is SftpProtocol
    assert SftpProtocol.schemes == ("sftp",)


def test_plugin_listing_names_the_distribution() -> None:
    infos = {info.name: info for info in PluginRegistry().describe([PROTOCOLS])}
    assert infos["sftp"].status == "loaded"
    assert infos["sftp"].distribution == "quorus-sftp"
