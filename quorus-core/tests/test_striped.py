"""Large sources read as several ranged streams: bytes in order, bounded memory, one SHA-256,
failures surfacing where they happen and retries resuming from the partial file."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from quorus.core.engine import TransferEngine, TransferRequest
from quorus.core.engine.model import RetryPolicy
from quorus.core.engine.striped import StripedReader, open_source
from quorus.core.errors import SourceChangedError, TransientError
from quorus.core.protocol import ReadStream
from quorus.core.protocols.file import FileProtocol
from quorus.core.testing.faults import FaultyProtocol
from quorus.core.uri import Location, parse_location

pytestmark = pytest.mark.anyio

STRIPE = 64 * 1024


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(20 * STRIPE + 12345))
    return path


async def read_all(stream: ReadStream) -> bytes:
    parts = []
    while chunk := await stream.read():
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize(("streams", "offset"), [(1, 0), (4, 0), (3, 5 * STRIPE + 7), (8, 0)])
async def test_bytes_arrive_in_file_order(source: Path, streams: int, offset: int) -> None:
    protocol = FaultyProtocol(FileProtocol({"chunk_size": 16 * 1024}), times=0)
    location = parse_location(str(source))
    info = await protocol.stat(location)
    async with StripedReader(
        protocol, location, info, offset, streams=streams, stripe_size=STRIPE
    ) as reader:
        data = await read_all(reader)
    assert data == source.read_bytes()[offset:]
    assert protocol.opened_reads > 1 and protocol.max_open_streams <= streams
    assert protocol.open_streams == 0


async def test_buffering_is_bounded_by_streams_times_stripe(source: Path) -> None:
    protocol = FaultyProtocol(FileProtocol({"chunk_size": 16 * 1024}), times=0)
    location = parse_location(str(source))
    info = await protocol.stat(location)
    peak = 0
    async with StripedReader(protocol, location, info, 0, streams=3, stripe_size=STRIPE) as reader:
        while True:
            await anyio.sleep(0.002)  # a slow consumer: the readers run ahead as far as allowed
            buffered = sum(s.received for s in reader._stripes)
            peak = max(peak, buffered)
            if not await reader.read():
                break
    assert STRIPE < peak <= 3 * STRIPE


async def test_a_failing_stripe_raises_after_the_good_bytes_before_it(source: Path) -> None:
    protocol = FaultyProtocol(
        FileProtocol({"chunk_size": 16 * 1024}), after_bytes=1000, times=1, healthy_first=2
    )
    location = parse_location(str(source))
    info = await protocol.stat(location)
    got = bytearray()

    async def drain(reader: ReadStream) -> None:
        while chunk := await reader.read():
            got.extend(chunk)

    async with StripedReader(protocol, location, info, 0, streams=4, stripe_size=STRIPE) as reader:
        with pytest.raises(TransientError, match="injected"):
            await drain(reader)
    # The stripes before the failing one were delivered whole, then 1000 bytes of it.
    # (Which stripe the third opened stream serves depends on scheduling.)
    assert bytes(got) == source.read_bytes()[: len(got)]
    assert len(got) % STRIPE == 1000


class ChangingProtocol(FileProtocol):
    """Reports a new mtime for every read opened after the first two."""

    opened = 0

    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        stream = await super().open_read(location, offset, length)
        self.opened += 1
        if self.opened > 2:
            stream.info = replace(stream.info, mtime=(stream.info.mtime or 0) + 1)
        return stream


async def test_a_source_that_changes_mid_read_is_detected(source: Path) -> None:
    protocol = ChangingProtocol()
    location = parse_location(str(source))
    info = await protocol.stat(location)
    async with StripedReader(protocol, location, info, 0, streams=2, stripe_size=STRIPE) as reader:
        with pytest.raises(SourceChangedError, match="changed during a striped read"):
            await read_all(reader)


class ShortRanges(FileProtocol):
    """Ends every ranged read 100 bytes early, as a server closing a response too soon."""

    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        return await super().open_read(location, offset, None if length is None else length - 100)


async def test_a_range_that_ends_early_is_a_transient_error(source: Path) -> None:
    protocol = ShortRanges()
    location = parse_location(str(source))
    info = await protocol.stat(location)
    async with StripedReader(protocol, location, info, 0, streams=2, stripe_size=STRIPE) as reader:
        with pytest.raises(TransientError, match=f"ended after {STRIPE - 100} of {STRIPE} bytes"):
            await read_all(reader)


async def test_open_source_stripes_only_large_ranged_sources(source: Path) -> None:
    protocol = FileProtocol()
    location = parse_location(str(source))
    info = await protocol.stat(location)
    size = info.size or 0
    striped = await open_source(protocol, location, info, 0, streams=4, cutoff=size)
    assert isinstance(striped, StripedReader)
    await striped.aclose()
    plain = await open_source(protocol, location, info, 0, streams=4, cutoff=size + 1)
    assert not isinstance(plain, StripedReader)
    await plain.aclose()
    # Without an explicit number, the protocol's max_streams (1 for local files) decides.
    default = await open_source(protocol, location, info, 0, cutoff=0)
    assert not isinstance(default, StripedReader)
    await default.aclose()


class FailOnceAt(FileProtocol):
    """The ranged read starting at ``offset`` is reset after 1000 bytes, the first time."""

    def __init__(self, offset: int) -> None:
        super().__init__()
        self.fail_offset = offset
        self.failed = False

    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        if offset == self.fail_offset and not self.failed:
            self.failed = True
            faulty = FaultyProtocol(FileProtocol(), after_bytes=1000, times=1)
            return await faulty.open_read(location, offset, length)
        return await super().open_read(location, offset, length)


async def test_engine_moves_a_striped_file_verified_and_resumes_after_a_reset(
    source: Path, tmp_path: Path
) -> None:
    # The stream of the ninth stripe is reset part-way; the retry resumes from the partial.
    protocol = FailOnceAt(8 * STRIPE)
    dest = tmp_path / "out" / "copy.bin"
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    async with TransferEngine(
        protocols={"file": protocol}, stream_cutoff=STRIPE, stripe_size=STRIPE
    ) as engine:
        result = await engine.transfer(
            TransferRequest.create(
                str(source), str(dest), checksum=f"sha256:{expected}", streams=4,
                retry=RetryPolicy(max_attempts=3, initial_delay=0.01),
            )
        )
    assert protocol.failed
    assert result.status == "completed", result.error
    # The first eight stripes reached the pump before the reset; all but the few chunks still
    # queued when it came were written and are kept.
    assert result.attempts == 2 and (result.resumed_from or 0) >= 2 * STRIPE
    assert result.sha256 == expected
    assert dest.read_bytes() == source.read_bytes()
