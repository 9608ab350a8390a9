"""Two builds of `quorus transfer` and lftp, interleaved, through one private vsftpd.

    python plugins/quorus-ftp/benchmarks/ftp_cli_ab.py --before /tmp/old/bin/quorus \\
        --after /tmp/new/bin/quorus --size-mib 512 --runs 5 [--tls]

Each round downloads and then uploads the same file with the `before` build, the `after`
build and lftp, in that order; every output is deleted before the next run. A throwaway lftp
download opens each round, so that no build always runs first after an upload: on the virtual
machine these numbers come from, a writer that gets fresh page-cache memory pays several
times the CPU for its writes, and which run gets it depends on what ran before. Prints the median MB/s (with each
run's) and the median CPU seconds of each case (the child's user + system time). Needs root
(vsftpd's account and chroot) and lftp; each build is a `quorus` command, e.g. of a
virtualenv with `quorus-core` and `quorus-ftp` installed from a checkout.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from quorus.protocols.ftp.testing import VsftpdServer

MIB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="the quorus command measured first")
    parser.add_argument("--after", required=True, help="the quorus command measured second")
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args()
    for command in (args.before, args.after):
        if shutil.which(command) is None:
            parser.error(f"{command}: not an executable")
    if shutil.which("lftp") is None:
        parser.error("lftp is not installed")
    home = Path(tempfile.mkdtemp(prefix="quorus-ftp-ab-"))
    os.chmod(home, 0o755)
    try:
        with VsftpdServer(home / "server", tls=args.tls) as server:
            race(server, home, args)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def race(server: VsftpdServer, home: Path, args: argparse.Namespace) -> None:
    size = args.size_mib * MIB
    source = home / "source.bin"
    with source.open("wb") as out:
        for _ in range(args.size_mib):
            out.write(os.urandom(MIB))
    os.link(source, server.files / "source.bin")
    os.chown(server.files / "source.bin", server.uid, server.uid)
    scheme = server.scheme
    env = {**os.environ, "QB_FTP_PASSWORD": server.password, "LFTP_PASSWORD": server.password}
    options = ["-o", f"{scheme}.username={server.username}",
               "-o", f"{scheme}.password=env:QB_FTP_PASSWORD", "--progress", "none"]
    settings = "set ftp:ssl-allow no"
    if args.tls:
        options += ["-o", f"ftps.ca_bundle={server.ca_bundle}"]
        settings = (f"set ftp:ssl-force yes; set ftp:ssl-protect-data yes; "
                    f"set ssl:ca-file {server.ca_bundle}")

    def lftp(command: str) -> list[str]:
        return ["lftp", "--env-password", "-u", server.username, "-p", str(server.port), "-e",
                f"{settings}; set xfer:clobber yes; {command}; bye", server.host]

    out, up = home / "out.bin", server.files / "up.bin"
    remote = server.url("/files/source.bin")
    cases: list[tuple[str, str, list[str], Path]] = [
        ("download", "", lftp(f"get /files/source.bin -o {out}"), out),  # not counted
        ("download", "before", [args.before, "transfer", remote, str(out), *options], out),
        ("download", "after", [args.after, "transfer", remote, str(out), *options], out),
        ("download", "lftp", lftp(f"get /files/source.bin -o {out}"), out),
        ("upload", "before", [args.before, "transfer", str(source), server.url("/files/up.bin"),
                              *options], up),
        ("upload", "after", [args.after, "transfer", str(source), server.url("/files/up.bin"),
                             *options], up),
        ("upload", "lftp", lftp(f"put {source} -o /files/up.bin"), up),
    ]
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.runs):
        for direction, tool, command, output in cases:
            output.unlink(missing_ok=True)
            started, before = time.perf_counter(), os.times()
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            seconds, after = time.perf_counter() - started, os.times()
            if done.returncode != 0:
                raise SystemExit(f"{tool or 'lftp'} {direction} failed: {done.stderr[-500:]}")
            if output.stat().st_size != size:
                raise SystemExit(f"{tool} {direction}: {output.stat().st_size} bytes, not {size}")
            cpu = (after.children_user - before.children_user
                   + after.children_system - before.children_system)
            if tool:
                results.setdefault((direction, tool), []).append((size / seconds / 1e6, cpu))
        for _, _, _, output in cases:
            output.unlink(missing_ok=True)
    print(f"| {scheme} case | tool | MB/s median (runs) | CPU s median |\n|---|---|---:|---:|")
    for (direction, tool), values in results.items():
        rates = ", ".join(f"{rate:.0f}" for rate, _ in values)
        print(f"| {direction} | {tool} | {statistics.median(r for r, _ in values):.0f} ({rates}) "
              f"| {statistics.median(c for _, c in values):.2f} |")


if __name__ == "__main__":
    main()
