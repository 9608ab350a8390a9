"""The distribution registers its protocol under both schemes it serves."""

from __future__ import annotations

import pytest
from quorus.core.plugins import PROTOCOLS, PluginRegistry, registry
from quorus.protocols.http import HttpProtocol


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_entry_point_resolves_to_the_protocol_class(scheme: str) -> None:
    assert registry().load(PROTOCOLS, scheme) is HttpProtocol
    assert PluginRegistry().load(PROTOCOLS, scheme) is HttpProtocol
    assert scheme in HttpProtocol.schemes


def test_plugin_listing_names_the_distribution() -> None:
    infos = {info.name: info for info in PluginRegistry().describe([PROTOCOLS])}
    for scheme in ("http", "https"):
        assert infos[scheme].status == "loaded"
        assert infos[scheme].distribution == "quorus-http"
