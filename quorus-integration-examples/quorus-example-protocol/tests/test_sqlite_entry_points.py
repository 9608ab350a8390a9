"""Quorus finds the plugin through its entry point alone."""

from __future__ import annotations

from importlib import metadata

from quorus.core import TransferProtocol
from quorus.core.plugins import PROTOCOLS, PluginRegistry, registry
from quorus_example_sqlite import SqliteProtocol


def test_registry_loads_the_protocol_class_by_scheme() -> None:
    assert registry().load("quorus.protocols", "sqlite") is SqliteProtocol


def test_a_fresh_registry_resolves_it_too() -> None:
    # A registry with an empty cache proves the lookup goes through the entry point, not
    # through something another test already loaded.
    loaded = PluginRegistry().load(PROTOCOLS, "sqlite")
    assert loaded is SqliteProtocol
    assert issubclass(loaded, TransferProtocol)
    assert "sqlite" in loaded.schemes


def test_entry_point_belongs_to_this_distribution() -> None:
    (entry_point,) = metadata.entry_points(group=PROTOCOLS, name="sqlite")
    assert entry_point.value == "quorus_example_sqlite.protocol:SqliteProtocol"
    assert entry_point.dist is not None
    assert entry_point.dist.metadata["Name"] == "quorus-example-sqlite"


def test_plugin_lives_outside_the_quorus_namespace() -> None:
    assert SqliteProtocol.__module__.split(".")[0] == "quorus_example_sqlite"
    info = {p.name: p for p in registry().describe([PROTOCOLS])}["sqlite"]
    assert info.status == "loaded", info.error
    assert info.distribution == "quorus-example-sqlite"
