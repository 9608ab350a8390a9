"""The ``file`` protocol's ``confine`` option against hostile paths and symbolic links,
including a link swapped in between a check and a write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from quorus.core.engine import TransferEngine, TransferRequest, TransferStatus
from quorus.core.errors import NotFoundError, PathOutsideRootsError, UnsafePathError
from quorus.core.protocols.file import FileProtocol
from quorus.core.uri import parse_location

pytestmark = pytest.mark.anyio


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """``(acme's root, a directory outside it holding a secret)``."""
    acme = tmp_path / "tenants" / "acme"
    (acme / "in").mkdir(parents=True)
    (acme / "in" / "data.csv").write_bytes(b"a,b\n1,2\n")
    outside = tmp_path / "tenants" / "globex"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"globex only")
    return acme, outside


def loc(path: Path | str) -> object:
    return parse_location(str(path))


async def test_inside_the_root_everything_works(roots: tuple[Path, Path]) -> None:
    acme, _ = roots
    async with FileProtocol({"confine": str(acme)}) as fp:
        info = await fp.stat(parse_location(str(acme / "in" / "data.csv")))
        assert info.size == 8
        await fp.makedirs(parse_location(str(acme / "out" / "deep")))
        stream = await fp.open_write(parse_location(str(acme / "out" / "deep" / "x")))
        await stream.write(b"hello")
        await stream.commit()
        await fp.rename(parse_location(str(acme / "out" / "deep" / "x")),
                        parse_location(str(acme / "out" / "y")), replace=False)
        assert (acme / "out" / "y").read_bytes() == b"hello"
        names = [i.name for i in await fp.list(parse_location(str(acme / "out")))]
        assert names == ["deep", "y"]
        await fp.delete(parse_location(str(acme / "out" / "y")))
        assert not (acme / "out" / "y").exists()


@pytest.mark.parametrize("path", [
    "{outside}/secret.txt",
    "{acme}/../globex/secret.txt",
    "{acme}/in/../../globex/secret.txt",
])
async def test_paths_outside_the_root_are_refused_for_every_operation(
    roots: tuple[Path, Path], path: str
) -> None:
    acme, outside = roots
    target = parse_location(path.format(acme=acme, outside=outside))
    async with FileProtocol({"confine": [str(acme)]}) as fp:
        with pytest.raises(PathOutsideRootsError):
            await fp.open_read(target)
        with pytest.raises(PathOutsideRootsError):
            await fp.open_write(target)
        with pytest.raises(PathOutsideRootsError):
            await fp.stat(target)
        with pytest.raises(PathOutsideRootsError):
            await fp.delete(target)
    assert (outside / "secret.txt").read_bytes() == b"globex only"


async def test_a_look_alike_name_is_refused(roots: tuple[Path, Path]) -> None:
    acme, _ = roots
    async with FileProtocol({"confine": [str(acme)]}) as fp:
        with pytest.raises(UnsafePathError):
            await fp.open_write(parse_location(str(acme) + "/\u2025/globex/x"))


async def test_a_symbolic_link_inside_the_root_is_never_followed(
    roots: tuple[Path, Path]
) -> None:
    acme, outside = roots
    (acme / "escape").symlink_to(outside)
    (acme / "in" / "secret-link").symlink_to(outside / "secret.txt")
    async with FileProtocol({"confine": [str(acme)]}) as fp:
        with pytest.raises(PathOutsideRootsError):
            await fp.open_write(parse_location(str(acme / "escape" / "planted.txt")))
        with pytest.raises(PathOutsideRootsError):
            await fp.open_read(parse_location(str(acme / "escape" / "secret.txt")))
        with pytest.raises(PathOutsideRootsError):
            await fp.open_read(parse_location(str(acme / "in" / "secret-link")))
        with pytest.raises(PathOutsideRootsError):
            await fp.open_write(parse_location(str(acme / "in" / "secret-link")))
        with pytest.raises(PathOutsideRootsError):
            await fp.makedirs(parse_location(str(acme / "escape" / "sub")))
        # Listed as the links they are, not as what they point to.
        listed = {i.name: i for i in await fp.list(parse_location(str(acme / "in")))}
        assert listed["secret-link"].size != len(b"globex only") or not listed[
            "secret-link"].is_dir
    assert not (outside / "planted.txt").exists()
    assert not (outside / "sub").exists()
    assert (outside / "secret.txt").read_bytes() == b"globex only"


async def test_a_link_swapped_in_after_a_check_does_not_redirect_the_write(
    roots: tuple[Path, Path]
) -> None:
    acme, outside = roots
    async with FileProtocol({"confine": [str(acme)]}) as fp:
        target = parse_location(str(acme / "drop" / "x.bin"))
        await fp.makedirs(parse_location(str(acme / "drop")))
        await fp.stat(parse_location(str(acme / "drop")))  # the check an attacker races
        os.rename(acme / "drop", acme / "drop-old")
        (acme / "drop").symlink_to(outside)
        with pytest.raises(PathOutsideRootsError):
            await fp.open_write(target)
    assert not (outside / "x.bin").exists()


async def test_an_engine_transfer_into_a_linked_directory_fails_and_writes_nothing(
    roots: tuple[Path, Path]
) -> None:
    acme, outside = roots
    (acme / "out").symlink_to(outside)
    confined = FileProtocol({"confine": [str(acme)]})
    async with confined, TransferEngine(protocols={"file": confined}) as engine:
        result = await engine.transfer(TransferRequest(
            parse_location(str(acme / "in" / "data.csv")),
            parse_location(str(acme / "out" / "copy.csv"))))
    assert result.status is TransferStatus.FAILED
    assert result.error_type == "PathOutsideRootsError"
    assert sorted(os.listdir(outside)) == ["secret.txt"]


async def test_a_missing_root_is_created_for_directories_but_not_for_reads(
    tmp_path: Path
) -> None:
    root = tmp_path / "data" / "tenants" / "new"
    async with FileProtocol({"confine": [f"{root}/*"]}) as fp:
        with pytest.raises(NotFoundError):
            await fp.open_read(parse_location(str(root / "x")))
        await fp.makedirs(parse_location(str(root / "incoming")))
    assert (root / "incoming").is_dir()


def test_the_option_is_checked() -> None:
    with pytest.raises(ValueError, match="confine"):
        FileProtocol({"confine": 42})
    assert FileProtocol({"confine": "/a, /b"}).confinement is not None
    assert FileProtocol({"confine": ""}).confinement is None
