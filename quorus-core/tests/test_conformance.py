"""The built-in protocols pass the conformance kit that third-party plugins run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quorus.core.protocols.file import FileProtocol
from quorus.core.protocols.memory import MemoryProtocol, memory_store
from quorus.core.testing import ConformanceTarget, ProtocolConformance
from quorus.core.uri import parse_location


class TestFileConformance(ProtocolConformance):
    @pytest.fixture
    async def conformance_target(self, tmp_path: Path) -> AsyncIterator[ConformanceTarget]:
        base = tmp_path / "share"
        base.mkdir()
        async with FileProtocol() as protocol:
            yield ConformanceTarget(protocol, parse_location(str(base)))


class TestConfinedFileConformance(ProtocolConformance):
    """Confined to a root (as agents run tenants' jobs), the file protocol behaves the same
    for everything inside it."""

    @pytest.fixture
    async def conformance_target(self, tmp_path: Path) -> AsyncIterator[ConformanceTarget]:
        base = tmp_path / "tenants" / "acme"
        (base / "share").mkdir(parents=True)
        async with FileProtocol({"confine": [str(base)]}) as protocol:
            yield ConformanceTarget(protocol, parse_location(str(base / "share")))


class TestMemoryConformance(ProtocolConformance):
    @pytest.fixture
    async def conformance_target(self) -> AsyncIterator[ConformanceTarget]:
        name = f"guarded-{uuid.uuid4().hex}"
        memory_store(name, required_token="s3cret")
        good = MemoryProtocol({"token": "s3cret"})
        bad = MemoryProtocol({"token": "wrong"})
        base = parse_location(f"memory://{name}/base")
        async with good, bad:
            await good.makedirs(base)
            yield ConformanceTarget(good, base, bad_credentials=bad)
