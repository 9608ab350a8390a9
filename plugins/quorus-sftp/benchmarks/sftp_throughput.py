"""SFTP throughput of ``quorus transfer`` against OpenSSH ``sftp`` and rclone, same server.

Starts a private OpenSSH sshd on loopback (:class:`~quorus.protocols.sftp.testing.OpenSshServer`),
writes a random file, and times each tool downloading and uploading it, round-robin, with the
peak RSS of each run (GNU time). Quorus computes the SHA-256 of every file it moves and
verifies it against ``--checksum``; the others do not hash.

    python plugins/quorus-sftp/benchmarks/sftp_throughput.py --size-mib 1024 --runs 3

Needs root, openssh-server, openssh-client, rclone and GNU time (``/usr/bin/time``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from quorus.protocols.sftp.testing import OpenSshServer

QUORUS = str(Path(sys.executable).parent / "quorus")
GNU_TIME = "/usr/bin/time"


@dataclass
class Case:
    direction: str
    tool: str
    command: list[str]
    output: Path
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    failure: str | None = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated tool name fragments")
    arguments = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="quorus-sftp-bench-"))
    try:
        work.chmod(0o755)
        with OpenSshServer(work / "ssh") as server:
            run(server, work, arguments.size_mib, arguments.runs, arguments.only)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(server: OpenSshServer, work: Path, size_mib: int, runs: int, only: str) -> None:
    source = server.files / "source.bin"
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for _ in range(size_mib):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            out.write(block)
    checksum = "sha256:" + digest.hexdigest()
    local = work / "local"
    local.mkdir()
    shutil.copyfile(source, local / "source.bin")
    remote_up = server.files / "up"
    remote_up.mkdir()

    ssh = ["-F", "/dev/null", "-i", str(server.client_key), "-o", "BatchMode=yes",
           "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "LogLevel=ERROR"]
    rclone = ["--sftp-host", server.host, "--sftp-port", str(server.port), "--sftp-user", "root",
              "--sftp-key-file", str(server.client_key), "--sftp-known-hosts-file",
              str(server.known_hosts), "--sftp-disable-hashcheck", "--sftp-shell-type", "unix"]
    options = [f"sftp.private_key={server.client_key}",
               f"sftp.known_hosts={server.known_hosts}", "sftp.agent=false"]
    quorus_options = [item for option in options for item in ("-o", option)]
    url = server.url(str(source))
    down, up = work / "down", work / "up-local-unused"
    down.mkdir()
    up.mkdir()

    def sftp_batch(line: str, *extra: str) -> list[str]:
        return ["sh", "-c", f"echo '{line}' | sftp -q {' '.join(ssh + list(extra))} "
                f"-P {server.port} -b - root@{server.host} >/dev/null"]

    cases = [
        Case("download", "quorus transfer",
             [QUORUS, "transfer", url, str(down / "quorus.bin"), "--checksum", checksum,
              *quorus_options], down / "quorus.bin"),
        Case("download", "OpenSSH sftp get",
             sftp_batch(f"get {source} {down / 'sftp.bin'}"), down / "sftp.bin"),
        Case("download", "OpenSSH sftp get -c aes128-gcm",
             sftp_batch(f"get {source} {down / 'sftpg.bin'}", "-c", "aes128-gcm@openssh.com"),
             down / "sftpg.bin"),
        Case("download", "rclone :sftp:",
             ["rclone", "copyto", f":sftp:{source}", str(down / "rclone.bin"), *rclone],
             down / "rclone.bin"),
        Case("upload", "quorus transfer",
             [QUORUS, "transfer", str(local / "source.bin"),
              server.url(str(remote_up / "quorus.bin")), "--checksum", checksum,
              *quorus_options], remote_up / "quorus.bin"),
        Case("upload", "OpenSSH sftp put",
             sftp_batch(f"put {local / 'source.bin'} {remote_up / 'sftp.bin'}"),
             remote_up / "sftp.bin"),
        Case("upload", "OpenSSH sftp put -c aes128-gcm",
             sftp_batch(f"put {local / 'source.bin'} {remote_up / 'sftpg.bin'}",
                        "-c", "aes128-gcm@openssh.com"), remote_up / "sftpg.bin"),
        Case("upload", "rclone :sftp:",
             ["rclone", "copyto", str(local / "source.bin"), f":sftp:{remote_up / 'rclone.bin'}",
              *rclone], remote_up / "rclone.bin"),
    ]
    if only:
        wanted = [text.strip() for text in only.split(",")]
        cases = [case for case in cases if any(text in case.tool for text in wanted)]
    size = size_mib * 1024 * 1024
    for round_number in range(runs):
        for case in cases:
            if case.failure:
                continue
            case.output.unlink(missing_ok=True)
            subprocess.run(["sync"], check=True)
            started = time.perf_counter()
            done = subprocess.run([GNU_TIME, "-f", "%M %U %S", *case.command],
                                  capture_output=True, text=True, timeout=600, check=False)
            elapsed = time.perf_counter() - started
            if done.returncode != 0 or not case.output.exists() or case.output.stat().st_size != size:
                case.failure = (done.stderr.strip().splitlines() or ["no output"])[-1]
                continue
            case.seconds.append(elapsed)
            rss, user, system = done.stderr.strip().splitlines()[-1].split()
            case.rss_kib.append(int(rss))
            case.cpu.append(float(user) + float(system))
            print(f"round {round_number + 1}: {case.direction:8} {case.tool:32} "
                  f"{size / elapsed / 1e6:8.1f} MB/s  rss {case.rss_kib[-1] / 1024:.0f} MiB  "
                  f"client cpu {case.cpu[-1]:.2f} s", flush=True)
    print()
    print("| direction | tool | MB/s median | min | max | peak RSS MiB | client CPU s (median) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for case in cases:
        if case.failure:
            print(f"| {case.direction} | {case.tool} | FAILED: {case.failure} | | | | |")
            continue
        rates = [size / seconds / 1e6 for seconds in case.seconds]
        print(f"| {case.direction} | {case.tool} | {statistics.median(rates):.0f} | "
              f"{min(rates):.0f} | {max(rates):.0f} | {max(case.rss_kib) / 1024:.0f} | "
              f"{statistics.median(case.cpu):.2f} |")


if __name__ == "__main__":
    main()
