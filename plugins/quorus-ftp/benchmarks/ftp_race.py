"""Race Quorus against lftp and rclone over FTP (or FTPS) on loopback, one private vsftpd.

    python plugins/quorus-ftp/benchmarks/ftp_race.py --size-mib 1024 --runs 3 [--tls]

Each case moves the same file through the same server; Quorus runs as ``quorus transfer``
(SHA-256 verified), timed with its peak RSS from GNU time when available. Needs root
(vsftpd's account and chroot), lftp and rclone. Prints one line per run and a median table.
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
from pathlib import Path

from quorus.protocols.ftp.testing import VsftpdServer

QUORUS = str(Path(sys.executable).parent / "quorus")


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int | None]:
    """Wall seconds and peak RSS (KiB, from GNU time) of ``command``."""
    handle, rss_path = tempfile.mkstemp(suffix=".rss")
    os.close(handle)
    gnu_time = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    full = [gnu_time, "-f", "%M", "-o", rss_path, *command] if gnu_time else command
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    done = subprocess.run(full, capture_output=True, text=True, env={**os.environ, **(env or {})},
                          check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {done.stderr[-2000:]}")
    text = Path(rss_path).read_text().strip()
    os.unlink(rss_path)
    return seconds, int(text.splitlines()[-1]) if text else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--cases", default="download,upload")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="quorus-ftp-bench-"))
    os.chmod(home, 0o755)
    try:
        with VsftpdServer(home / "server", tls=args.tls) as server:
            race(server, home, args)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def race(server: VsftpdServer, home: Path, args: argparse.Namespace) -> None:
    size = args.size_mib * 1024 * 1024
    source = home / "source.bin"
    with source.open("wb") as out:
        for _ in range(args.size_mib):
            out.write(os.urandom(1024 * 1024))
    remote_file = server.files / "source.bin"
    shutil.copyfile(source, remote_file)
    os.chown(remote_file, server.uid, server.uid)
    user, password, port = server.username, server.password, str(server.port)
    scheme = server.scheme
    qopts = ["-o", f"{scheme}.username={user}", "-o", f"{scheme}.password=env:QFTP_PW"]
    if args.tls:
        qopts += ["-o", f"{scheme}.ca_bundle={server.ca_bundle}"]
    env = {"QFTP_PW": password}
    lftp_set = ("set cmd:fail-exit yes; set net:max-retries 1; set xfer:clobber yes; "
                "set ftp:passive-mode yes; "
                + (f"set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set ssl:ca-file {server.ca_bundle}"
                   if args.tls else "set ftp:ssl-allow no"))
    obscured = subprocess.run(["rclone", "obscure", password], capture_output=True, text=True,
                              check=True).stdout.strip()
    rclone = ["rclone", "--config", "/dev/null", "-q", "--ftp-host", server.host,
              "--ftp-port", port, "--ftp-user", user, "--ftp-pass", obscured,
              "--multi-thread-streams", "0"]
    if args.tls:
        rclone += ["--ftp-explicit-tls", "--ftp-no-check-certificate"]
    out = home / "out.bin"
    cases: dict[str, list[tuple[str, list[str], dict[str, str] | None]]] = {
        "download": [
            ("quorus transfer", [QUORUS, "transfer", server.url("/files/source.bin"), str(out),
                                 *qopts, "--progress", "none", "--streams", "1"], env),
            ("lftp get", ["lftp", "-u", f"{user},{password}", "-p", port, "-e",
                          f"{lftp_set}; get /files/source.bin -o {out}; bye", server.host], None),
            ("rclone copyto", [*rclone, "copyto", ":ftp:files/source.bin", str(out)], None),
        ],
        "upload": [
            ("quorus transfer", [QUORUS, "transfer", str(source), server.url("/files/up.bin"),
                                 *qopts, "--progress", "none"], env),
            ("lftp put", ["lftp", "-u", f"{user},{password}", "-p", port, "-e",
                          f"{lftp_set}; put {source} -o /files/up.bin; bye", server.host], None),
            ("rclone copyto", [*rclone, "copyto", str(source), ":ftp:files/up.bin"], None),
        ],
    }
    results: dict[tuple[str, str], list[tuple[float, int | None]]] = {}
    for run in range(args.runs):
        for direction in args.cases.split(","):
            for name, command, cenv in cases[direction]:
                for leftover in (out, server.files / "up.bin"):
                    leftover.unlink(missing_ok=True)
                try:
                    seconds, rss = timed(command, cenv)
                except RuntimeError as exc:
                    print(f"run {run + 1} {scheme} {direction:8} {name:16} FAILED: "
                          f"{str(exc).splitlines()[0][:200]}", flush=True)
                    continue
                results.setdefault((direction, name), []).append((seconds, rss))
                print(f"run {run + 1} {scheme} {direction:8} {name:16} {size / seconds / 1e6:7.0f} MB/s"
                      f"  rss {rss or 0:>7} KiB", flush=True)
    print(f"\n| {scheme} case | tool | MB/s median | peak RSS MiB (max) |\n|---|---|---:|---:|")
    for (direction, name), values in sorted(results.items()):
        median = statistics.median(s for s, _ in values)
        rss = max((r or 0) for _, r in values) / 1024
        print(f"| {direction} | {name} | {size / median / 1e6:.0f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
