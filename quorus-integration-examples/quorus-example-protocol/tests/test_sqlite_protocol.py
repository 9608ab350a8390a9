"""Behaviour of the sqlite protocol beyond the conformance kit: where stores live, versions,
directories, bounded reads, credentials and how database failures are reported."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quorus.core import (
    AuthenticationError,
    ConfigurationError,
    DestinationExistsError,
    InvalidURIError,
    Location,
    NotAFileError,
    NotFoundError,
    SourceChangedError,
    TransferError,
    TransientError,
    parse_location,
)
from quorus_example_sqlite import SqliteProtocol, require_token

pytestmark = pytest.mark.anyio


@pytest.fixture
async def protocol(tmp_path: Path) -> AsyncIterator[SqliteProtocol]:
    async with SqliteProtocol({"root": str(tmp_path)}) as instance:
        yield instance


async def put(protocol: SqliteProtocol, uri: str, data: bytes) -> Location:
    location = parse_location(uri)
    await protocol.makedirs(location.parent)
    async with await protocol.open_write(location) as stream:
        await stream.write(data)
        await stream.commit()
    return location


async def get(protocol: SqliteProtocol, location: Location, offset: int = 0) -> list[bytes]:
    chunks = []
    async with await protocol.open_read(location, offset) as stream:
        while chunk := await stream.read():
            chunks.append(chunk)
    return chunks


# --- where stores live ---------------------------------------------------------------------


async def test_store_defaults_to_root_option(tmp_path: Path, protocol: SqliteProtocol) -> None:
    await put(protocol, "sqlite://archive/a.txt", b"a")
    assert (tmp_path / "archive.sqlite3").is_file()


async def test_databases_option_maps_store_to_file(tmp_path: Path) -> None:
    nested = tmp_path / "nested.db"
    flat = tmp_path / "sub" / "flat.db"
    options = {"root": str(tmp_path / "unused"), "databases": {"Nested": str(nested)},
               "databases.flat": str(flat)}
    async with SqliteProtocol(options) as protocol:
        await put(protocol, "sqlite://nested/x", b"1")
        await put(protocol, "sqlite://flat/x", b"2")
    assert nested.is_file()
    assert flat.is_file()
    assert not (tmp_path / "unused").exists()


async def test_root_from_environment_then_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUORUS_SQLITE_ROOT", str(tmp_path / "from-env"))
    assert SqliteProtocol().database_path("s") == tmp_path / "from-env" / "s.sqlite3"
    monkeypatch.delenv("QUORUS_SQLITE_ROOT")
    monkeypatch.chdir(tmp_path)
    assert SqliteProtocol().database_path("s") == tmp_path / "quorus-sqlite" / "s.sqlite3"


async def test_reading_a_missing_store_creates_nothing(tmp_path: Path, protocol: SqliteProtocol) -> None:
    with pytest.raises(NotFoundError, match="no such store"):
        await protocol.stat(parse_location("sqlite://ghost/file"))
    assert not (tmp_path / "ghost.sqlite3").exists()


async def test_foreign_sqlite_database_is_refused(tmp_path: Path, protocol: SqliteProtocol) -> None:
    with sqlite3.connect(tmp_path / "other.sqlite3") as connection:
        connection.execute("CREATE TABLE accounts (id INTEGER)")
    connection.close()
    with pytest.raises(TransferError, match="not a Quorus sqlite store"):
        await protocol.stat(parse_location("sqlite://other/x"))


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("sqlite:///no-store/file", "names no store"),
        ("sqlite://store:99/file", "no port"),
        ("sqlite://user:pw@store/file", "credentials"),
        ("sqlite://bad!name/file", "invalid store name"),
    ],
)
async def test_unusable_uris_are_rejected(protocol: SqliteProtocol, uri: str, message: str) -> None:
    with pytest.raises(InvalidURIError, match=message):
        await protocol.stat(parse_location(uri))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rooot": "/x"}, "unknown sqlite option"),
        ({"chunk_size": 10}, "not between"),
        ({"busy_timeout": "soon"}, "not a number"),
        ({"databases": "a=b"}, "must map store names"),
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SqliteProtocol(options)


# --- files and versions --------------------------------------------------------------------


async def test_every_write_changes_the_etag(protocol: SqliteProtocol) -> None:
    location = await put(protocol, "sqlite://s/f.bin", b"one")
    first = await protocol.stat(location)
    await put(protocol, "sqlite://s/f.bin", b"two")
    second = await protocol.stat(location)
    assert first.etag is not None
    assert second.etag is not None
    assert first.etag != second.etag
    assert second.mtime is not None
    assert second.size == 3


async def test_etag_differs_after_delete_and_recreate(protocol: SqliteProtocol) -> None:
    location = await put(protocol, "sqlite://s/f.bin", b"same")
    before = (await protocol.stat(location)).etag
    await protocol.delete(location)
    await put(protocol, "sqlite://s/f.bin", b"same")
    assert (await protocol.stat(location)).etag != before


async def test_mode_is_stored(protocol: SqliteProtocol) -> None:
    location = parse_location("sqlite://s/m.bin")
    async with await protocol.open_write(location, mode=0o640) as stream:
        await stream.commit()
    assert (await protocol.stat(location)).mode == 0o640


async def test_reads_are_bounded_by_chunk_size(tmp_path: Path) -> None:
    chunk = 64 * 1024
    data = bytes(range(256)) * (5 * chunk // 256) + b"tail"
    async with SqliteProtocol({"root": str(tmp_path), "chunk_size": chunk}) as protocol:
        location = await put(protocol, "sqlite://s/big.bin", data)
        chunks = await get(protocol, location, offset=1000)
    assert b"".join(chunks) == data[1000:]
    assert max(map(len, chunks)) <= chunk
    assert len(chunks) >= len(data[1000:]) // chunk


async def test_small_writes_are_stored_in_whole_blocks(tmp_path: Path) -> None:
    chunk = 4096
    async with SqliteProtocol({"root": str(tmp_path), "chunk_size": chunk}) as protocol:
        location = parse_location("sqlite://s/small-writes.bin")
        async with await protocol.open_write(location) as stream:
            for _ in range(100):
                await stream.write(b"x" * 100)
            await stream.commit()
        assert b"".join(await get(protocol, location)) == b"x" * 10_000
    with sqlite3.connect(tmp_path / "s.sqlite3") as connection:
        sizes = [row[0] for row in connection.execute("SELECT size FROM blocks ORDER BY start")]
    connection.close()
    assert sizes == [4096, 4096, 10_000 - 8192]


async def test_rewriting_a_file_while_it_is_read_is_detected(tmp_path: Path) -> None:
    async with SqliteProtocol({"root": str(tmp_path), "chunk_size": 4096}) as protocol:
        location = await put(protocol, "sqlite://s/moving.bin", b"a" * 20_000)
        async with await protocol.open_read(location) as stream:
            assert await stream.read() == b"a" * 4096
            await put(protocol, "sqlite://s/moving.bin", b"b" * 20_000)
            with pytest.raises(SourceChangedError, match="rewritten"):
                await stream.read()


async def test_resume_cuts_inside_a_block(tmp_path: Path) -> None:
    async with SqliteProtocol({"root": str(tmp_path), "chunk_size": 4096}) as protocol:
        location = await put(protocol, "sqlite://s/r.bin", b"A" * 10_000)
        async with await protocol.open_write(location, 5000) as stream:
            await stream.write(b"B" * 3000)
            await stream.commit()
        assert b"".join(await get(protocol, location)) == b"A" * 5000 + b"B" * 3000


async def test_resume_beyond_the_partial_is_refused(protocol: SqliteProtocol) -> None:
    location = await put(protocol, "sqlite://s/short.bin", b"12345")
    with pytest.raises(TransferError, match="has only 5 bytes"):
        await protocol.open_write(location, 6)


# --- directories ---------------------------------------------------------------------------


async def test_write_needs_an_existing_directory(protocol: SqliteProtocol) -> None:
    await protocol.makedirs(parse_location("sqlite://s/"))
    with pytest.raises(NotFoundError, match="does not exist"):
        await protocol.open_write(parse_location("sqlite://s/missing/dir/f"))


async def test_makedirs_refuses_a_file_in_the_way(protocol: SqliteProtocol) -> None:
    await put(protocol, "sqlite://s/a/file", b"x")
    with pytest.raises(NotAFileError, match="is a file"):
        await protocol.makedirs(parse_location("sqlite://s/a/file/sub"))


async def test_empty_directory_is_listed_and_deleted(protocol: SqliteProtocol) -> None:
    await put(protocol, "sqlite://s/top/f.txt", b"f")
    await protocol.makedirs(parse_location("sqlite://s/top/empty"))
    entries = await protocol.list(parse_location("sqlite://s/top"))
    assert [(e.name, e.is_dir) for e in entries] == [("empty", True), ("f.txt", False)]
    with pytest.raises(TransferError, match="not empty"):
        await protocol.delete(parse_location("sqlite://s/top"))
    await protocol.delete(parse_location("sqlite://s/top/empty"))
    assert [e.name for e in await protocol.list(parse_location("sqlite://s/top"))] == ["f.txt"]


async def test_rename_moves_a_directory_tree(protocol: SqliteProtocol) -> None:
    await put(protocol, "sqlite://s/old/deep/f.txt", b"deep")
    await protocol.rename(parse_location("sqlite://s/old"), parse_location("sqlite://s/new"))
    moved = parse_location("sqlite://s/new/deep/f.txt")
    assert b"".join(await get(protocol, moved)) == b"deep"
    assert [e.name for e in await protocol.list(parse_location("sqlite://s/new/deep"))] == ["f.txt"]
    with pytest.raises(NotFoundError):
        await protocol.stat(parse_location("sqlite://s/old/deep"))


async def test_rename_into_itself_is_refused(protocol: SqliteProtocol) -> None:
    await protocol.makedirs(parse_location("sqlite://s/d"))
    with pytest.raises(TransferError, match="into itself"):
        await protocol.rename(parse_location("sqlite://s/d"), parse_location("sqlite://s/d/sub"))


async def test_rename_without_replace_keeps_both(protocol: SqliteProtocol) -> None:
    source = await put(protocol, "sqlite://s/a", b"a")
    target = await put(protocol, "sqlite://s/b", b"b")
    with pytest.raises(DestinationExistsError):
        await protocol.rename(source, target, replace=False)
    assert b"".join(await get(protocol, source)) == b"a"
    assert b"".join(await get(protocol, target)) == b"b"


async def test_rename_across_stores_is_refused(protocol: SqliteProtocol) -> None:
    source = await put(protocol, "sqlite://one/a", b"a")
    with pytest.raises(InvalidURIError, match="same store"):
        await protocol.rename(source, parse_location("sqlite://two/a"))


# --- credentials ---------------------------------------------------------------------------


async def test_missing_token_is_an_authentication_error(tmp_path: Path) -> None:
    require_token(tmp_path / "locked.sqlite3", "t0ken")
    async with SqliteProtocol({"root": str(tmp_path)}) as protocol:
        with pytest.raises(AuthenticationError, match="none was given") as excinfo:
            await protocol.stat(parse_location("sqlite://locked/"))
    assert not excinfo.value.retryable


async def test_token_from_environment_and_never_in_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_token(tmp_path / "locked.sqlite3", "right-token")
    monkeypatch.setenv("LOCKED_TOKEN", "right-token")
    async with SqliteProtocol({"root": str(tmp_path), "token": "env:LOCKED_TOKEN"}) as protocol:
        assert (await protocol.stat(parse_location("sqlite://locked/"))).is_dir
    monkeypatch.setenv("WRONG_TOKEN", "wrong-token-value")
    async with SqliteProtocol({"root": str(tmp_path), "token": "env:WRONG_TOKEN"}) as protocol:
        with pytest.raises(AuthenticationError) as excinfo:
            await protocol.stat(parse_location("sqlite://locked/"))
    assert "env:WRONG_TOKEN" in str(excinfo.value)
    assert "wrong-token-value" not in str(excinfo.value)
    assert "right-token" not in str(excinfo.value)


async def test_token_rotation_applies_to_open_connections(tmp_path: Path) -> None:
    async with SqliteProtocol({"root": str(tmp_path), "token": "old"}) as protocol:
        require_token(tmp_path / "s.sqlite3", "old")
        location = await put(protocol, "sqlite://s/f", b"x")
        require_token(tmp_path / "s.sqlite3", "new")
        with pytest.raises(AuthenticationError, match="rejected"):
            await protocol.stat(location)


# --- database failures ---------------------------------------------------------------------


async def test_locked_database_is_a_retryable_error(tmp_path: Path) -> None:
    async with SqliteProtocol({"root": str(tmp_path), "busy_timeout": 0.05}) as protocol:
        location = await put(protocol, "sqlite://s/f", b"x")
        holder = sqlite3.connect(tmp_path / "s.sqlite3", isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            with pytest.raises(TransientError, match="busy") as excinfo:
                await protocol.open_write(location)
            assert excinfo.value.retryable
        finally:
            holder.close()
        # Once the lock is gone the same instance writes again.
        await put(protocol, "sqlite://s/f", b"after")
        assert b"".join(await get(protocol, location)) == b"after"


async def test_write_after_a_failed_block_is_refused(tmp_path: Path) -> None:
    async with SqliteProtocol({"root": str(tmp_path), "chunk_size": 4096}) as protocol:
        location = await put(protocol, "sqlite://s/f", b"")
        stream = await protocol.open_write(location)
        await protocol.delete(location)
        with pytest.raises(NotFoundError, match="deleted while being written"):
            await stream.write(b"x" * 5000)
        with pytest.raises(TransferError, match="closed"):
            await stream.write(b"more")
        await stream.abort()
        assert stream.finished


async def test_many_files_round_trip(protocol: SqliteProtocol) -> None:
    expected = {}
    for index in range(20):
        data = hashlib.sha256(str(index).encode()).digest() * (index + 1)
        await put(protocol, f"sqlite://s/many/{index:02d}.bin", data)
        expected[f"{index:02d}.bin"] = data
    entries = await protocol.list(parse_location("sqlite://s/many"))
    assert {e.name: e.size for e in entries} == {k: len(v) for k, v in expected.items()}
    for name, data in expected.items():
        assert b"".join(await get(protocol, parse_location(f"sqlite://s/many/{name}"))) == data
