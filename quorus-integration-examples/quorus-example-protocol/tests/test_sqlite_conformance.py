"""The sqlite protocol passes Quorus's protocol conformance kit, under asyncio and trio.

The store requires a token, so the kit's bad-credentials test runs too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quorus.core import parse_location
from quorus.core.testing import ConformanceTarget, ProtocolConformance
from quorus_example_sqlite import SqliteProtocol, require_token

TOKEN = "conformance-token"


class TestSqliteConformance(ProtocolConformance):
    @pytest.fixture
    async def conformance_target(self, tmp_path: Path) -> AsyncIterator[ConformanceTarget]:
        require_token(tmp_path / "conformance.sqlite3", TOKEN)
        good = SqliteProtocol({"root": str(tmp_path), "token": TOKEN})
        bad = SqliteProtocol({"root": str(tmp_path), "token": "not-the-token"})
        base = parse_location("sqlite://conformance/base")
        async with good, bad:
            await good.makedirs(base)
            yield ConformanceTarget(good, base, bad_credentials=bad)
