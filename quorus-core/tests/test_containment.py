"""Misbehaving plugins are contained: a raising hook or a protocol raising a foreign exception
affects one transfer at most, and location checks run before any I/O."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from quorus.core import hookimpl
from quorus.core.cli.options import parse_protocol_options
from quorus.core.engine import TransferEngine, TransferRequest, TransferResult, TransferStatus
from quorus.core.errors import ConfigurationError, InvalidURIError
from quorus.core.hooks import new_plugin_manager
from quorus.core.protocol import FileInfo
from quorus.core.protocols.memory import MemoryProtocol, memory_store
from quorus.core.uri import Location

pytestmark = pytest.mark.anyio


async def test_a_raising_hook_does_not_change_the_outcome(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        @hookimpl
        def quorus_transfer_finished(self, request: TransferRequest, result: TransferResult) -> None:
            raise RuntimeError("dashboard is down")

    pm = new_plugin_manager(load_entry_points=False)
    pm.register(Broken())
    (tmp_path / "src").write_bytes(b"abc")
    with caplog.at_level(logging.ERROR):
        async with TransferEngine(plugins=pm) as engine:
            result = await engine.transfer(
                TransferRequest.create(str(tmp_path / "src"), str(tmp_path / "dst")))
    assert result.status is TransferStatus.COMPLETED
    assert (tmp_path / "dst").read_bytes() == b"abc"
    assert "quorus_transfer_finished hook implementation raised" in caplog.text


class ExplodingProtocol(MemoryProtocol):
    async def stat(self, location: Location) -> FileInfo:
        raise ValueError("bug in a plugin")


class PickyProtocol(MemoryProtocol):
    def check_location(self, location: Location) -> None:
        if location.host is None:
            raise InvalidURIError(f"{location}: name a store, memory://STORE/path")


async def test_a_foreign_exception_fails_only_that_transfer(tmp_path: Path) -> None:
    async with TransferEngine(protocols={"memory": ExplodingProtocol()}) as engine:
        result = await engine.transfer(
            TransferRequest.create("memory://s/x", str(tmp_path / "dst")))
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert result.error == "unexpected error: ValueError: bug in a plugin"


async def test_location_check_fails_before_any_io(tmp_path: Path) -> None:
    name = f"picky-{uuid.uuid4().hex}"
    memory_store(name).put("/x", b"data")
    async with TransferEngine(protocols={"memory": PickyProtocol()}) as engine:
        bad = await engine.transfer(TransferRequest.create("memory:///x", str(tmp_path / "a")))
        good = await engine.transfer(TransferRequest.create(f"memory://{name}/x", str(tmp_path / "b")))
    assert (bad.status, bad.error_type, bad.attempts) == (
        TransferStatus.FAILED, "InvalidURIError", 1)
    assert good.ok


def test_protocol_options_nest_on_dots() -> None:
    assert parse_protocol_options([
        "https.ca_bundle=/ca.pem", "https.verify=false", "http.headers.X-Team=42",
        "sqlite.databases.main=/db/main.sqlite3", "file.chunk_size=4194304",
    ]) == {
        "https": {"ca_bundle": "/ca.pem", "verify": False},
        "http": {"headers": {"X-Team": "42"}},
        "sqlite": {"databases": {"main": "/db/main.sqlite3"}},
        "file": {"chunk_size": 4194304},
    }


@pytest.mark.parametrize("item", ["noscheme", "http.=x", "http..a=1", ".a=b", "http.headers=x"])
def test_malformed_protocol_options(item: str) -> None:
    options = ["http.headers.A=1", item] if item == "http.headers=x" else [item]
    with pytest.raises(ConfigurationError, match="invalid option"):
        parse_protocol_options(options)
