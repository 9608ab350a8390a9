"""Where the time of an FTP transfer goes: the plugin's own data path against the engine's.

    python plugins/quorus-ftp/benchmarks/ftp_profile.py --size-mib 512 --runs 3 [--tls]

One private vsftpd (:class:`~quorus.protocols.ftp.testing.VsftpdServer`) serves a random
file; in one process, each round runs these cases (round-robin, so a busy phase of a shared
machine hits all alike) and reports wall-clock MB/s and CPU seconds per GiB of this process
(user + system; vsftpd's own CPU is not counted):

- ``plugin read``: ``open_read`` and ``read()`` to the end, the chunks dropped: the plugin's
  data path alone;
- ``plugin write``: ``open_write`` and ``write()`` of 1 MiB blocks from memory, ``commit``;
- ``engine download`` / ``engine upload``: ``TransferEngine.transfer`` between the server and
  a local file (SHA-256, the engine's pipeline and the local file's writes or reads included).

``--py-spy DIR`` also records one engine download and upload under py-spy (if installed),
as speedscope files in DIR. Needs root (vsftpd's account and chroot).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from quorus.core.engine import TransferEngine
from quorus.core.engine.model import TransferRequest
from quorus.core.uri import parse_location
from quorus.protocols.ftp import FtpProtocol
from quorus.protocols.ftp.testing import VsftpdServer

MIB = 1024 * 1024
GIB = 1024 * MIB
#: Extra protocol options (``--option KEY=VALUE``).
OPTIONS: dict[str, object] = {}
#: Parallel ranged streams of the engine's downloads (``--streams``; None: the protocol's).
STREAMS: list[int | None] = [None]


def cpu() -> float:
    times = os.times()
    return times.user + times.system


async def plugin_read(server: VsftpdServer, work: Path, size: int) -> None:
    protocol = FtpProtocol(server.options(**OPTIONS))
    try:
        stream = await protocol.open_read(parse_location(server.url("/files/source.bin")))
        got = 0
        async with stream:
            while chunk := await stream.read():
                got += len(chunk)
        assert got == size, got
    finally:
        await protocol.aclose()


async def plugin_write(server: VsftpdServer, work: Path, size: int) -> None:
    protocol = FtpProtocol(server.options(**OPTIONS))
    block = os.urandom(MIB)
    try:
        stream = await protocol.open_write(parse_location(server.url("/files/up.bin")))
        async with stream:
            for _ in range(size // MIB):
                await stream.write(block)
            await stream.commit()
    finally:
        await protocol.aclose()
    assert (server.files / "up.bin").stat().st_size == size


async def engine_download(server: VsftpdServer, work: Path, size: int) -> None:
    async with TransferEngine(protocol_options={server.scheme: server.options(**OPTIONS)}) as engine:
        result = await engine.transfer(TransferRequest.create(
            server.url("/files/source.bin"), str(work / "out.bin"), streams=STREAMS[0]))
    assert result.bytes_transferred == size, result


async def engine_upload(server: VsftpdServer, work: Path, size: int) -> None:
    async with TransferEngine(protocol_options={server.scheme: server.options(**OPTIONS)}) as engine:
        result = await engine.transfer(TransferRequest.create(
            str(work / "source.bin"), server.url("/files/up.bin")))
    assert result.bytes_transferred == size, result


CASES: dict[str, Callable[[VsftpdServer, Path, int], Awaitable[None]]] = {
    "plugin read": plugin_read,
    "plugin write": plugin_write,
    "engine download": engine_download,
    "engine upload": engine_upload,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    parser.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a protocol option (e.g. chunk_size=262144); repeatable")
    parser.add_argument("--streams", type=int, default=None,
                        help="parallel ranged streams of engine downloads")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="DIR")
    args = parser.parse_args()
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--option {item!r}: expected KEY=VALUE")
        OPTIONS[key.strip()] = value.strip()
    STREAMS[0] = args.streams
    names = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    home = Path(tempfile.mkdtemp(prefix="quorus-ftp-profile-"))
    os.chmod(home, 0o755)
    try:
        with VsftpdServer(home / "server", tls=args.tls) as server:
            run(server, home, names, args)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run(server: VsftpdServer, work: Path, names: list[str], args: argparse.Namespace) -> None:
    size = args.size_mib * MIB
    source = work / "source.bin"
    with source.open("wb") as out:
        for _ in range(args.size_mib):
            out.write(os.urandom(MIB))
    remote = server.files / "source.bin"
    os.link(source, remote)
    os.chown(remote, server.uid, server.uid)
    results: dict[str, list[tuple[float, float]]] = {}
    for round_ in range(args.runs):
        for name in names:
            for leftover in (work / "out.bin", server.files / "up.bin"):
                leftover.unlink(missing_ok=True)
            subprocess.run(["sync"], check=True)
            started, used = time.perf_counter(), cpu()
            anyio.run(CASES[name], server, work, size, backend=args.backend)
            wall, spent = time.perf_counter() - started, cpu() - used
            results.setdefault(name, []).append((wall, spent))
            print(f"run {round_ + 1} {server.scheme} {name:16} {size / wall / 1e6:7.0f} MB/s "
                  f"cpu {spent * GIB / size:5.2f} s/GiB", flush=True)
    print(f"\n| {server.scheme} ({args.backend}) | MB/s median | CPU s/GiB median |\n|---|---:|---:|")
    for name, values in results.items():
        wall = statistics.median(w for w, _ in values)
        spent = statistics.median(c for _, c in values)
        print(f"| {name} | {size / wall / 1e6:.0f} | {spent * GIB / size:.2f} |")
    if args.py_spy is not None:
        record(server, args)


def record(server: VsftpdServer, args: argparse.Namespace) -> None:
    """One engine download and upload under py-spy, each in a child process."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args.py_spy.mkdir(parents=True, exist_ok=True)
    for name in ("engine download", "engine upload"):
        output = args.py_spy / f"{server.scheme}-{name.replace(' ', '-')}.txt"
        subprocess.run([spy, "record", "--format", "raw", "--rate", "250", "--threads",
                        "--output", str(output), "--", sys.executable, __file__,
                        "--size-mib", str(args.size_mib), "--runs", "1", "--cases", name,
                        *(["--tls"] if args.tls else []),
                        *(f"--option={item}" for item in args.option),
                        *(["--streams", str(args.streams)] if args.streams else [])], check=True)
        print(f"py-spy profile of {name}: {output}")


if __name__ == "__main__":
    main()
