"""The conformance kit against a real Samba smbd, under asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quorus.core.testing import ConformanceTarget, ProtocolConformance
from quorus.core.uri import Location
from quorus.protocols.smb import SmbProtocol
from quorus.protocols.smb.testing import SambaServer


class TestSmbConformance(ProtocolConformance):
    @pytest.fixture
    async def conformance_target(
        self, samba: SambaServer, share_dir: tuple[Path, Location]
    ) -> AsyncIterator[ConformanceTarget]:
        _, base = share_dir
        protocol = SmbProtocol({"username": samba.username, "password": samba.password})
        bad = SmbProtocol({"username": samba.username, "password": "not-the-password"})
        async with protocol, bad:
            yield ConformanceTarget(protocol, base, bad_credentials=bad)
