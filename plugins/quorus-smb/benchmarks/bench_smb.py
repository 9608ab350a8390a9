"""Loopback throughput of the SMB plugin against smbclient and rclone, on one private smbd.

Usage (as root): python bench_smb.py [--size-mib 1024] [--runs 3] [--workdir DIR]

Starts :class:`~quorus.protocols.smb.testing.SambaServer` in ``--workdir``, makes a random
file, then times in rounds: ``quorus transfer`` download and upload (SHA-256 verified by the
engine; once with the default, signed, and once with ``smb.signing=auto``), ``smbclient get``/``put`` (-m SMB3) and ``rclone copyto`` with its smb backend.
Each command runs under GNU time for its peak RSS. Prints a Markdown table of medians.
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
from pathlib import Path

from quorus.protocols.smb.testing import SHARE, SambaServer

GNU_TIME = "/usr/bin/time"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def timed(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of ``command``."""
    fd, rss_path = tempfile.mkstemp()
    os.close(fd)
    wrapped = [GNU_TIME, "-f", "%M", "-o", rss_path, *command] if os.path.exists(GNU_TIME) else command
    start = time.perf_counter()
    done = subprocess.run(wrapped, env=env, capture_output=True, timeout=900, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {done.stderr.decode(errors='replace')[-2000:]}")
    text = Path(rss_path).read_text().strip().splitlines()
    os.unlink(rss_path)
    return seconds, int(text[-1]) if text and text[-1].isdigit() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--only", default="", help="comma-separated case names to run")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="quorus-smb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    local = work / "local"
    local.mkdir(exist_ok=True)
    source = local / "source.bin"
    size = args.size_mib * 1024 * 1024
    if not source.exists() or source.stat().st_size != size:
        with source.open("wb") as out:
            for _ in range(args.size_mib):
                out.write(os.urandom(1024 * 1024))
    digest = sha256_of(source)
    bin_dir = Path(sys.executable).parent
    quorus = str(bin_dir / "quorus")

    with SambaServer(work / "samba") as server:
        share = server.share_path(SHARE)
        shutil.copyfile(source, share / "source.bin")
        env = dict(os.environ, QUORUS_BENCH_SMB_PASSWORD=server.password)
        client_conf = work / "client.conf"
        client_conf.write_text("[global]\n")
        smbclient = ["smbclient", "-s", str(client_conf), f"//127.0.0.1/{SHARE}",
                     "-p", str(server.port), "-U", f"{server.username}%{server.password}", "-m", "SMB3"]
        obscured = subprocess.run(["rclone", "obscure", server.password], capture_output=True,
                                  text=True, check=True).stdout.strip()
        rclone = ["rclone", "--config", "/dev/null", "--smb-host", "127.0.0.1", "--smb-port",
                  str(server.port), "--smb-user", server.username, "--smb-pass", obscured]
        qopts = ["-o", f"smb.username={server.username}", "-o", "smb.password=env:QUORUS_BENCH_SMB_PASSWORD",
                 "--checksum", f"sha256:{digest}"]
        url = server.url
        cases: dict[str, tuple[list[str], Path]] = {
            "download quorus": ([quorus, "transfer", url("source.bin"), str(local / "q-dl.bin"), *qopts],
                                local / "q-dl.bin"),
            "download quorus signing=auto": ([quorus, "transfer", url("source.bin"), str(local / "qa-dl.bin"),
                                              *qopts, "-o", "smb.signing=auto"], local / "qa-dl.bin"),
            "download smbclient": ([*smbclient, "-c", f"get source.bin {local / 's-dl.bin'}"],
                                   local / "s-dl.bin"),
            "download rclone": ([*rclone, "copyto", f":smb:{SHARE}/source.bin", str(local / "r-dl.bin")],
                                local / "r-dl.bin"),
            "upload quorus": ([quorus, "transfer", str(source), url("q-up.bin"), *qopts], share / "q-up.bin"),
            "upload quorus signing=auto": ([quorus, "transfer", str(source), url("qa-up.bin"), *qopts,
                                            "-o", "smb.signing=auto"], share / "qa-up.bin"),
            "upload smbclient": ([*smbclient, "-c", f"put {source} s-up.bin"], share / "s-up.bin"),
            "upload rclone": ([*rclone, "copyto", str(source), f":smb:{SHARE}/r-up.bin"], share / "r-up.bin"),
        }
        if args.only:
            wanted = set(args.only.split(","))
            cases = {name: case for name, case in cases.items() if name in wanted}
        times: dict[str, list[float]] = {name: [] for name in cases}
        rss: dict[str, list[int]] = {name: [] for name in cases}
        for run in range(args.runs):
            for name, (command, output) in cases.items():
                output.unlink(missing_ok=True)
                subprocess.run(["sync"], check=False)
                seconds, peak = timed(command, env)
                if run == 0 and sha256_of(output) != digest:
                    raise RuntimeError(f"{name}: output differs from the source")
                times[name].append(seconds)
                rss[name].append(peak)
                print(f"run {run + 1} {name}: {size / seconds / 1e6:.0f} MB/s, "
                      f"peak RSS {peak / 1024:.0f} MiB", file=sys.stderr, flush=True)
    print(f"\n{args.size_mib} MiB over loopback, median of {args.runs} runs (MB/s = 10^6 B/s)\n")
    print("| case | MB/s median | min | max | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for name in cases:
        rates = [size / t / 1e6 for t in times[name]]
        print(f"| {name} | {statistics.median(rates):.0f} | {min(rates):.0f} | {max(rates):.0f} "
              f"| {max(rss[name]) / 1024:.0f} |")


if __name__ == "__main__":
    main()
