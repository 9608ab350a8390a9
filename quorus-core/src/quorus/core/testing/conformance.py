"""The protocol conformance kit.

A protocol plugin proves it honours the :class:`~quorus.core.protocol.TransferProtocol`
contract by running this suite against a real server of its own::

    from quorus.core.testing import ConformanceTarget, ProtocolConformance

    class TestMyProtocolConformance(ProtocolConformance):
        @pytest.fixture
        async def conformance_target(self, my_server):
            protocol = MyProtocol({"password": my_server.password})
            bad = MyProtocol({"password": "wrong"})
            async with protocol, bad:
                yield ConformanceTarget(protocol, my_server.base_location, bad_credentials=bad)

``base`` must name an existing, writable, empty directory for this test. Tests of an optional
operation are skipped, with the reason, only when the protocol's capabilities say it does not
offer it; claiming a capability and failing its test is a failure. By default every test runs
under asyncio and trio; a plugin built on an asyncio-only library overrides ``anyio_backend``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from quorus.core.engine import TransferEngine, TransferRequest, TransferStatus
from quorus.core.errors import (
    AuthenticationError,
    DestinationExistsError,
    NotFoundError,
)
from quorus.core.protocol import Capabilities, TransferProtocol
from quorus.core.protocols.memory import memory_store
from quorus.core.testing.fixtures import BACKENDS, payload_bytes
from quorus.core.uri import Location

#: Larger than any sane chunk size, and not a multiple of a power of two.
PAYLOAD_SIZE = 3 * 1024 * 1024 + 12345


@dataclass
class ConformanceTarget:
    """What the kit needs from a plugin's test fixture.

    - ``protocol``: an instance configured with valid credentials.
    - ``base``: an existing, writable, empty directory on the server.
    - ``bad_credentials``: an instance for the same server with wrong credentials, or
      ``None`` when the protocol has no notion of credentials (local files).
    - ``seed``: optionally, a way to place a file on the server without the protocol, for
      protocols that cannot write (read-only HTTP); it takes a path below ``base`` and bytes.
    """

    protocol: TransferProtocol
    base: Location
    bad_credentials: TransferProtocol | None = None
    seed: Callable[[str, bytes], Awaitable[None]] | None = None

    def at(self, name: str) -> Location:
        return self.base.with_path(self.base.path.rstrip("/") + "/" + name)

    @property
    def capabilities(self) -> Capabilities:
        return self.protocol.capabilities(self.base)

    async def put(self, name: str, data: bytes) -> Location:
        """Place ``data`` at ``name`` below ``base``, through ``seed`` or the protocol."""
        location = self.at(name)
        if self.seed is not None:
            await self.seed(name, data)
            return location
        async with await self.protocol.open_write(location, size_hint=len(data)) as stream:
            for start in range(0, len(data), 1024 * 1024):
                await stream.write(data[start : start + 1024 * 1024])
            await stream.commit()
        return location

    async def get(
        self,
        location: Location,
        offset: int = 0,
        length: int | None = None,
        *,
        protocol: TransferProtocol | None = None,
    ) -> bytes:
        """Read ``location`` (through ``protocol``, by default the target's own)."""
        chunks = []
        async with await (protocol or self.protocol).open_read(location, offset, length) as stream:
            while chunk := await stream.read():
                chunks.append(chunk)
        return b"".join(chunks)


def _require(flag: bool, what: str) -> None:
    if not flag:
        pytest.skip(f"the protocol does not claim {what}")


@pytest.mark.anyio
class ProtocolConformance:
    """The conformance suite. Subclass it in a ``Test*`` class and provide
    ``conformance_target``."""

    @pytest.fixture(params=BACKENDS)
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def payload(self) -> bytes:
        return payload_bytes(PAYLOAD_SIZE, seed=PAYLOAD_SIZE)

    # --- reading ---------------------------------------------------------------------

    async def test_read_whole_file(self, conformance_target: ConformanceTarget, payload: bytes) -> None:
        location = await conformance_target.put("whole.bin", payload)
        assert await conformance_target.get(location) == payload

    async def test_stat_reports_size_and_file(
        self, conformance_target: ConformanceTarget, payload: bytes
    ) -> None:
        location = await conformance_target.put("stat.bin", payload)
        info = await conformance_target.protocol.stat(location)
        assert info.size == len(payload)
        assert not info.is_dir

    async def test_read_stream_reports_source_info(
        self, conformance_target: ConformanceTarget, payload: bytes
    ) -> None:
        location = await conformance_target.put("info.bin", payload)
        async with await conformance_target.protocol.open_read(location) as stream:
            assert stream.info.size in (None, len(payload))
            assert await stream.read()

    async def test_ranged_read(self, conformance_target: ConformanceTarget, payload: bytes) -> None:
        _require(conformance_target.capabilities.ranged_read, "ranged reads")
        location = await conformance_target.put("ranged.bin", payload)
        assert await conformance_target.get(location, 1000, 5000) == payload[1000:6000]
        tail = len(payload) - 777
        assert await conformance_target.get(location, tail) == payload[tail:]
        assert await conformance_target.get(location, len(payload)) == b""

    async def test_stat_missing_raises_not_found(self, conformance_target: ConformanceTarget) -> None:
        with pytest.raises(NotFoundError):
            await conformance_target.protocol.stat(conformance_target.at("missing.bin"))

    async def test_read_missing_raises_not_found(self, conformance_target: ConformanceTarget) -> None:
        with pytest.raises(NotFoundError):
            await conformance_target.get(conformance_target.at("missing.bin"))

    # --- writing ---------------------------------------------------------------------

    async def test_write_commit_then_read(
        self, conformance_target: ConformanceTarget, payload: bytes
    ) -> None:
        location = conformance_target.at("written.bin")
        async with await conformance_target.protocol.open_write(location, size_hint=len(payload)) as w:
            for start in range(0, len(payload), 300_000):
                await w.write(payload[start : start + 300_000])
            await w.commit()
            assert w.finished
        assert await conformance_target.get(location) == payload
        assert (await conformance_target.protocol.stat(location)).size == len(payload)

    async def test_write_replaces_existing(self, conformance_target: ConformanceTarget) -> None:
        location = conformance_target.at("replaced.bin")
        for content in (b"first version, longer than the second", b"second"):
            async with await conformance_target.protocol.open_write(location) as w:
                await w.write(content)
                await w.commit()
        assert await conformance_target.get(location) == b"second"

    async def test_abort_without_rename_leaves_nothing_new(
        self, conformance_target: ConformanceTarget
    ) -> None:
        caps = conformance_target.capabilities
        _require(not caps.rename, "to need abort semantics (it renames partial files instead)")
        location = conformance_target.at("aborted.bin")
        async with await conformance_target.protocol.open_write(location) as w:
            await w.write(b"never to be seen")
            await w.abort()
        with pytest.raises(NotFoundError):
            await conformance_target.protocol.stat(location)

    async def test_resume_write_at_offset(
        self, conformance_target: ConformanceTarget, payload: bytes
    ) -> None:
        _require(conformance_target.capabilities.write_at_offset, "writes at an offset")
        location = conformance_target.at("resumed.bin")
        cut = len(payload) // 3
        async with await conformance_target.protocol.open_write(location) as w:
            await w.write(payload[:cut] + b"garbage past the cut")
            await w.abort()
        async with await conformance_target.protocol.open_write(location, cut) as w:
            await w.write(payload[cut:])
            await w.commit()
        data = await conformance_target.get(location)
        assert hashlib.sha256(data).hexdigest() == hashlib.sha256(payload).hexdigest()

    # --- directory operations --------------------------------------------------------

    async def test_list_directory(self, conformance_target: ConformanceTarget) -> None:
        _require(conformance_target.capabilities.listing, "listing")
        for name in ("b.txt", "a.txt"):
            await conformance_target.put(name, name.encode())
        entries = await conformance_target.protocol.list(conformance_target.base)
        by_name = {entry.name: entry for entry in entries}
        assert {"a.txt", "b.txt"} <= set(by_name)
        assert by_name["a.txt"].size == len(b"a.txt")
        assert not by_name["a.txt"].is_dir

    async def test_stat_directory(self, conformance_target: ConformanceTarget) -> None:
        _require(conformance_target.capabilities.listing, "listing (and so directories)")
        assert (await conformance_target.protocol.stat(conformance_target.base)).is_dir

    async def test_rename(self, conformance_target: ConformanceTarget) -> None:
        _require(conformance_target.capabilities.rename, "rename")
        source = await conformance_target.put("old-name.bin", b"moving")
        target = conformance_target.at("new-name.bin")
        await conformance_target.protocol.rename(source, target)
        assert await conformance_target.get(target) == b"moving"
        with pytest.raises(NotFoundError):
            await conformance_target.protocol.stat(source)

    async def test_rename_without_replace_refuses_existing(
        self, conformance_target: ConformanceTarget
    ) -> None:
        _require(conformance_target.capabilities.rename, "rename")
        source = await conformance_target.put("incoming.bin", b"new")
        target = await conformance_target.put("present.bin", b"old")
        with pytest.raises(DestinationExistsError):
            await conformance_target.protocol.rename(source, target, replace=False)
        assert await conformance_target.get(target) == b"old"
        await conformance_target.protocol.rename(source, target, replace=True)
        assert await conformance_target.get(target) == b"new"

    async def test_delete(self, conformance_target: ConformanceTarget) -> None:
        _require(conformance_target.capabilities.delete, "delete")
        location = await conformance_target.put("doomed.bin", b"bye")
        await conformance_target.protocol.delete(location)
        with pytest.raises(NotFoundError):
            await conformance_target.protocol.stat(location)

    async def test_delete_missing_raises_not_found(self, conformance_target: ConformanceTarget) -> None:
        _require(conformance_target.capabilities.delete, "delete")
        with pytest.raises(NotFoundError):
            await conformance_target.protocol.delete(conformance_target.at("never-was.bin"))

    # --- credentials -----------------------------------------------------------------

    async def test_bad_credentials_rejected(self, conformance_target: ConformanceTarget) -> None:
        if conformance_target.bad_credentials is None:
            pytest.skip("the protocol has no credentials")
        location = await conformance_target.put("guarded.bin", b"secret data")
        with pytest.raises(AuthenticationError) as excinfo:
            await conformance_target.get(location, protocol=conformance_target.bad_credentials)
        assert not excinfo.value.retryable

    # --- through the engine ----------------------------------------------------------

    async def test_engine_round_trip(
        self, conformance_target: ConformanceTarget, payload: bytes
    ) -> None:
        """The engine moves a file to the server and back, verified both ways."""
        store_name = f"conformance-{uuid.uuid4().hex}"
        store = memory_store(store_name)
        store.put("/in/payload.bin", payload)
        digest = "sha256:" + hashlib.sha256(payload).hexdigest()
        remote = conformance_target.at("engine/payload.bin")
        protocols = {remote.scheme: conformance_target.protocol}
        async with TransferEngine(protocols=protocols) as engine:
            if conformance_target.seed is None:
                up = await engine.transfer(TransferRequest.create(
                    f"memory://{store_name}/in/payload.bin", remote, checksum=digest))
                assert up.status is TransferStatus.COMPLETED, up.error
            else:
                remote = await conformance_target.put("engine-payload.bin", payload)
            down = await engine.transfer(TransferRequest.create(
                remote, f"memory://{store_name}/out/payload.bin", checksum=digest))
        assert down.status is TransferStatus.COMPLETED, down.error
        assert down.sha256 == digest.removeprefix("sha256:")
        assert store.get("/out/payload.bin") == payload

    async def test_engine_rejects_wrong_checksum(
        self, conformance_target: ConformanceTarget, payload: bytes
    ) -> None:
        location = await conformance_target.put("checked.bin", payload)
        store_name = f"conformance-{uuid.uuid4().hex}"
        store = memory_store(store_name)
        async with TransferEngine(protocols={location.scheme: conformance_target.protocol}) as engine:
            result = await engine.transfer(TransferRequest.create(
                location, f"memory://{store_name}/out/checked.bin",
                checksum="sha256:" + "0" * 64))
        assert result.status is TransferStatus.FAILED
        assert result.error_type == "ChecksumMismatchError"
        assert "/out/checked.bin" not in store.files


__all__ = ["PAYLOAD_SIZE", "ConformanceTarget", "ProtocolConformance"]
