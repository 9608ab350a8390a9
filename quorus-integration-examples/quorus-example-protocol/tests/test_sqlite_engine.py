"""The transfer engine with an sqlite destination: resuming an interrupted transfer from the
partial file kept in the store, and several transfers into one store at once."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quorus.core import (
    RetryPolicy,
    TransferEngine,
    TransferRequest,
    TransferStatus,
    parse_location,
)
from quorus.core.protocols.file import FileProtocol
from quorus.core.testing import payload_bytes
from quorus.core.testing.faults import FaultyProtocol
from quorus_example_sqlite import SqliteProtocol

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteProtocol]:
    async with SqliteProtocol({"root": str(tmp_path), "chunk_size": 64 * 1024}) as protocol:
        yield protocol


async def test_interrupted_transfer_resumes_from_the_partial_in_the_store(
    tmp_path: Path, sqlite: SqliteProtocol
) -> None:
    payload = payload_bytes(1_000_000, seed=7)
    source = tmp_path / "data.bin"
    source.write_bytes(payload)
    cut = 400_000
    # The first read of the source breaks off after `cut` bytes, like a reset connection.
    flaky_source = FaultyProtocol(FileProtocol({"chunk_size": 64 * 1024}), after_bytes=cut)
    request = TransferRequest.create(
        str(source),
        "sqlite://vault/in/data.bin",
        checksum="sha256:" + hashlib.sha256(payload).hexdigest(),
        retry=RetryPolicy(max_attempts=3, initial_delay=0.0, jitter=0.0),
    )
    async with TransferEngine(protocols={"file": flaky_source, "sqlite": sqlite}) as engine:
        result = await engine.transfer(request)

    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.attempts == 2
    # The second attempt continued where the first one's stored blocks ended.
    assert 0 < result.resumed_from <= cut
    assert flaky_source.opened_reads == 2
    assert result.bytes_transferred == len(payload) - result.resumed_from
    async with await sqlite.open_read(parse_location("sqlite://vault/in/data.bin")) as stream:
        chunks = []
        while chunk := await stream.read():
            chunks.append(chunk)
    assert b"".join(chunks) == payload
    # The partial file and its record were renamed and removed: only the file is left.
    listing = await sqlite.list(parse_location("sqlite://vault/in"))
    assert [entry.name for entry in listing] == ["data.bin"]


async def test_concurrent_transfers_into_one_store(tmp_path: Path, sqlite: SqliteProtocol) -> None:
    sources = {}
    for index in range(6):
        path = tmp_path / "src" / f"f{index}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(payload_bytes(150_000 + index, seed=index))
        sources[path] = f"sqlite://shared/batch/f{index}.bin"
    requests = [TransferRequest.create(str(src), dst) for src, dst in sources.items()]
    async with TransferEngine(protocols={"sqlite": sqlite}, max_concurrent=4) as engine:
        results = await engine.transfer_many(requests)

    assert [r.status for r in results] == [TransferStatus.COMPLETED] * len(requests)
    with sqlite3.connect(tmp_path / "shared.sqlite3") as connection:
        stored = dict(connection.execute(
            "SELECT f.path, sum(b.size) FROM files f JOIN blocks b ON b.file_id = f.id "
            "GROUP BY f.path"
        ).fetchall())
    connection.close()
    assert stored == {f"/batch/f{i}.bin": 150_000 + i for i in range(6)}
    for result, src in zip(results, sources, strict=True):
        assert result.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
