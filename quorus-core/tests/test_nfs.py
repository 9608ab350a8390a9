"""``nfs://`` locations resolved through the agent's mount table to the ``file`` protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quorus.core.engine import TransferEngine, TransferRequest
from quorus.core.errors import ConfigurationError, InvalidURIError
from quorus.core.protocols.nfs import (
    NfsProtocol,
    filesystem_type,
    kernel_nfs_mounts,
    parse_mounts,
)
from quorus.core.testing import ConformanceTarget, ProtocolConformance
from quorus.core.uri import parse_location

MOUNTS = """\
sysfs /sys sysfs rw 0 0
/dev/vda / ext4 rw,relatime 0 0
fileserver:/srv/exports /mnt/exports nfs4 rw,vers=4.2,rsize=1048576 0 0
[fd00::5]:/data /mnt/v6\\040data nfs rw 0 0
fileserver:/srv/exports/deep /mnt/deep nfs4 rw 0 0
"""


class TestNfsConformance(ProtocolConformance):
    @pytest.fixture
    async def conformance_target(self, tmp_path: Path) -> AsyncIterator[ConformanceTarget]:
        (tmp_path / "mnt" / "base").mkdir(parents=True)
        protocol = NfsProtocol(
            {"mounts": {"fileserver:/srv/data": str(tmp_path / "mnt")}, "verify_mount": False}
        )
        async with protocol:
            yield ConformanceTarget(protocol, parse_location("nfs://fileserver/srv/data/base"))


def test_the_longest_export_wins_and_paths_map_below_it(tmp_path: Path) -> None:
    protocol = NfsProtocol(
        {
            "mounts": "fileserver:/srv=/mnt/all, fileserver:/srv/exports/data=/mnt/data",
            "verify_mount": False,
        }
    )
    assert protocol.local_path(parse_location("nfs://fileserver/srv/exports/data/in/a.csv")) == (
        "/mnt/data/in/a.csv"
    )
    assert protocol.local_path(parse_location("nfs://FILESERVER/srv/other/b")) == "/mnt/all/other/b"
    assert protocol.local_path(parse_location("nfs://fileserver/srv/exports/data")) == "/mnt/data"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("nfs://otherhost/srv/a", "no mounted NFS export of otherhost covers /srv/a"),
        ("nfs://fileserver/srvx/a", "no mounted NFS export of fileserver covers /srvx/a"),
        ("nfs://fileserver/srv/../etc/passwd", "'..' may not appear"),
    ],
)
def test_locations_outside_every_export_are_refused(uri: str, message: str) -> None:
    protocol = NfsProtocol({"mounts": {"fileserver:/srv": "/mnt/srv"}, "verify_mount": False})
    with pytest.raises(InvalidURIError, match=message):
        protocol.check_location(parse_location(uri))


@pytest.mark.parametrize(
    ("mounts", "message"),
    [
        ("fileserver:/srv", "expected host:/export=/local"),
        ({"fileserver/srv": "/mnt"}, "expected host:/export"),
        ({"fileserver:/srv": "relative/dir"}, "must be absolute"),
        (42, "must map host:/export"),
    ],
)
def test_bad_mount_tables_are_configuration_errors(mounts: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_mounts(mounts)


def test_kernel_mount_table_supplies_nfs_mounts(tmp_path: Path) -> None:
    table = tmp_path / "mounts"
    table.write_text(MOUNTS)
    found = {(m.host, m.export): m.local for m in kernel_nfs_mounts(str(table))}
    assert found == {
        ("fileserver", "/srv/exports"): "/mnt/exports",
        ("fd00::5", "/data"): "/mnt/v6 data",
        ("fileserver", "/srv/exports/deep"): "/mnt/deep",
    }


def test_filesystem_type_is_that_of_the_nearest_mount(tmp_path: Path) -> None:
    table = tmp_path / "mounts"
    table.write_text(MOUNTS)
    assert filesystem_type("/mnt/exports/x/y", str(table)) == "nfs4"
    assert filesystem_type("/mnt/exportsx", str(table)) == "ext4"
    assert filesystem_type("/sys/kernel", str(table)) == "sysfs"


def test_an_unmounted_export_is_not_written_to(tmp_path: Path) -> None:
    # The mount point exists but nothing is mounted there: it lies on the root filesystem.
    protocol = NfsProtocol({"mounts": {"fileserver:/srv": str(tmp_path)}})
    with pytest.raises(ConfigurationError, match="not NFS: is the export mounted"):
        protocol.check_location(parse_location("nfs://fileserver/srv/a.bin"))


@pytest.mark.anyio
async def test_transfer_from_nfs_to_file_and_back(tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    (mount / "in").mkdir(parents=True)
    (mount / "in" / "a.bin").write_bytes(b"nfs data" * 1000)
    options = {"nfs": {"mounts": {"fileserver:/export": str(mount)}, "verify_mount": False}}
    async with TransferEngine(protocol_options=options) as engine:
        down = await engine.transfer(
            TransferRequest.create("nfs://fileserver/export/in/a.bin", str(tmp_path / "a.bin"))
        )
        up = await engine.transfer(
            TransferRequest.create(str(tmp_path / "a.bin"), "nfs://fileserver/export/out/b.bin")
        )
    assert down.status == up.status == "completed"
    assert (mount / "out" / "b.bin").read_bytes() == b"nfs data" * 1000
