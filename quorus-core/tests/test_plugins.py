"""Plugin discovery: entry points resolve, missing plugins name what to install, broken
plugins are isolated, and QUORUS_DISABLE_PLUGINS turns plugins off."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from quorus.core.errors import PluginError, PluginNotFoundError
from quorus.core.hooks import new_plugin_manager
from quorus.core.plugins import HOOKS, PROTOCOLS, PluginRegistry, missing_hint
from quorus.core.protocols.file import FileProtocol
from quorus.core.protocols.memory import MemoryProtocol
from stevedore import ExtensionManager


def test_core_entry_points_resolve() -> None:
    registry = PluginRegistry()
    assert registry.load(PROTOCOLS, "file") is FileProtocol
    assert registry.load(PROTOCOLS, "memory") is MemoryProtocol


def test_describe_names_distribution_and_version() -> None:
    infos = {(i.group, i.name): i for i in PluginRegistry().describe([PROTOCOLS])}
    file_info = infos[(PROTOCOLS, "file")]
    assert (file_info.distribution, file_info.status) == ("quorus-core", "loaded")
    assert file_info.version
    assert file_info.target == "quorus.core.protocols.file:FileProtocol"


def test_missing_protocol_names_the_distribution_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every Quorus protocol is installed in the workspace, so a well-known name that is not
    # installed is added to the table for this test.
    from quorus.core import plugins

    monkeypatch.setitem(plugins.KNOWN_DISTRIBUTIONS, (PROTOCOLS, "gopher2"), "quorus-gopher")
    with pytest.raises(PluginNotFoundError) as excinfo:
        PluginRegistry().load(PROTOCOLS, "gopher2")
    assert str(excinfo.value) == "no protocol for scheme 'gopher2': pip install quorus-gopher"
    assert missing_hint(PROTOCOLS, "sftp") == "no protocol for scheme 'sftp': pip install quorus-sftp"
    assert "quorus.protocols" in missing_hint(PROTOCOLS, "gopher")


def test_disabled_plugin_is_refused_and_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUORUS_DISABLE_PLUGINS", "quorus.protocols:memory, other")
    registry = PluginRegistry()
    with pytest.raises(PluginError, match="disabled by QUORUS_DISABLE_PLUGINS"):
        registry.load(PROTOCOLS, "memory")
    assert registry.load(PROTOCOLS, "file") is FileProtocol
    statuses = {i.name: i.status for i in registry.describe([PROTOCOLS])}
    assert statuses["memory"] == "disabled"
    assert statuses["file"] == "loaded"


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution on sys.path with one broken and one working protocol and a hook plugin."""
    dist_info = tmp_path / "fake_quorus_plugins-1.2.3.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-quorus-plugins\nVersion: 1.2.3\n"
    )
    (dist_info / "entry_points.txt").write_text(textwrap.dedent("""
        [quorus.protocols]
        broken = fake_broken_protocol:Protocol
        gopher = fake_gopher_protocol:GopherProtocol

        [quorus.plugins]
        broken-hooks = fake_broken_protocol
        counter = fake_gopher_protocol
        """))
    (tmp_path / "fake_broken_protocol.py").write_text(
        "raise ImportError('libgopher.so.3: cannot open shared object file')\n"
    )
    (tmp_path / "fake_gopher_protocol.py").write_text(textwrap.dedent("""
        from quorus.core import hookimpl
        from quorus.core.protocols.memory import MemoryProtocol

        class GopherProtocol(MemoryProtocol):
            schemes = ("gopher",)

        seen = []

        @hookimpl
        def quorus_metric(name, kind, value, labels):
            seen.append(name)
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    # stevedore keeps each group's entry points for the life of the process.
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})
    return tmp_path


def test_broken_plugin_is_isolated_and_reported(fake_distribution: Path) -> None:
    registry = PluginRegistry()
    with pytest.raises(PluginError) as excinfo:
        registry.load(PROTOCOLS, "broken")
    message = str(excinfo.value)
    assert "fake-quorus-plugins" in message
    assert "libgopher.so.3" in message
    gopher = registry.load(PROTOCOLS, "gopher")
    assert gopher.__name__ == "GopherProtocol"
    infos = {i.name: i for i in registry.describe([PROTOCOLS])}
    assert infos["broken"].status == "failed"
    assert "ImportError: libgopher.so.3" in (infos["broken"].error or "")
    assert infos["gopher"].status == "loaded"
    assert (infos["gopher"].distribution, infos["gopher"].version) == (
        "fake-quorus-plugins", "1.2.3")
    assert infos["file"].status == "loaded"


def test_hook_plugins_load_and_broken_ones_are_skipped(fake_distribution: Path) -> None:
    pm = new_plugin_manager()
    assert pm.get_plugin("counter") is not None
    assert pm.get_plugin("broken-hooks") is None
    pm.hook.quorus_metric(name="transfer.count", kind="counter", value=1.0, labels={})
    import fake_gopher_protocol  # type: ignore[import-not-found]

    assert fake_gopher_protocol.seen == ["transfer.count"]
    statuses = {i.name: i.status for i in PluginRegistry().describe([HOOKS])}
    assert statuses == {"broken-hooks": "failed", "counter": "loaded"} | {
        k: v for k, v in statuses.items() if k not in ("broken-hooks", "counter")}


def test_disabled_hook_plugin_is_not_registered(
    fake_distribution: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUORUS_DISABLE_PLUGINS", "counter")
    assert new_plugin_manager().get_plugin("counter") is None


def test_consensus_and_storage_entry_points_resolve(tmp_path: Path) -> None:
    from quorus.core.consensus.standalone import StandaloneBackend
    from quorus.core.plugins import CONSENSUS, STORAGE
    from quorus.core.storage import load_store
    from quorus.core.storage.file import FileLogStore
    from quorus.core.storage.memory import MemoryLogStore

    assert PluginRegistry().load(CONSENSUS, "standalone") is StandaloneBackend
    assert isinstance(load_store("file", tmp_path), FileLogStore)
    assert isinstance(load_store("memory", None), MemoryLogStore)
    assert "memory" in PluginRegistry().names(STORAGE)
