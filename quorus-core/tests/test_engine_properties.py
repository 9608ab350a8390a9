"""Property: whatever the file size, chunking and point of failure, an interrupted and resumed
transfer delivers exactly the source bytes and their SHA-256."""

from __future__ import annotations

import hashlib
import uuid

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quorus.core.engine import RetryPolicy, TransferEngine, TransferRequest, TransferStatus
from quorus.core.protocols.memory import MemoryProtocol, memory_store
from quorus.core.testing.faults import FaultyProtocol


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(min_size=0, max_size=150_000),
    chunk_size=st.integers(min_value=1024, max_value=40_000),
    cut=st.floats(min_value=0.0, max_value=1.0),
    failures=st.integers(min_value=0, max_value=3),
)
def test_resumed_transfer_delivers_the_source(
    backend: str, data: bytes, chunk_size: int, cut: float, failures: int
) -> None:
    name = f"prop-{uuid.uuid4().hex}"
    store = memory_store(name)
    store.put("/src", data)
    inner = MemoryProtocol({"chunk_size": chunk_size})
    faulty = FaultyProtocol(inner, after_bytes=int(len(data) * cut), times=failures)

    async def run() -> None:
        async with TransferEngine(protocols={"memory": faulty}) as engine:
            result = await engine.transfer(TransferRequest.create(
                f"memory://{name}/src", f"memory://{name}/dst",
                retry=RetryPolicy(max_attempts=failures + 1, initial_delay=0, max_delay=0),
                checksum="sha256:" + hashlib.sha256(data).hexdigest()))
        assert result.status is TransferStatus.COMPLETED, result.error
        assert result.attempts <= failures + 1
        assert store.get("/dst") == data
        assert result.bytes == len(data)
        assert not [p for p in store.files if "quorus-partial" in p]

    anyio.run(run, backend=backend)
