"""The distribution registers its protocol under both schemes it serves."""

from __future__ import annotations

import pytest
from quorus.core.plugins import PROTOCOLS, PluginRegistry, registry
from quorus.protocols.ftp import FtpProtocol


@pytest.mark.parametrize("scheme", ["ftp", "ftps"])
def test_entry_point_resolves_to_the_protocol_class(scheme: str) -> None:
    assert registry().load(PROTOCOLS, scheme) is FtpProtocol
    assert PluginRegistry().load(PROTOCOLS, scheme) is FtpProtocol
    assert scheme in FtpProtocol.schemes


def test_plugin_listing_names_the_distribution() -> None:
    infos = {info.name: info for info in PluginRegistry().describe([PROTOCOLS])}
    for scheme in ("ftp", "ftps"):
        assert infos[scheme].status == "loaded"
        assert infos[scheme].distribution == "quorus-ftp"
