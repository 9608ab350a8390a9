"""Race `quorus transfer` against the tools users would otherwise script, in one run.

Cases, each timed over several interleaved rounds (every round runs every case once, so a
slow phase of a shared machine hits all of them alike):

- local: `quorus transfer` (SHA-256 verified, fsynced, renamed into place) vs `cp` + `sync`
  followed by `sha256sum` of the copy;
- http download over loopback from nginx (sendfile): `quorus transfer` (verified, fsynced) vs
  `curl -o` (no verification, no fsync);
- peak RSS of `quorus transfer` for a file of --size-mib and one of --big-mib, local and HTTP.

Prints a Markdown report (and writes it to --markdown). Ratios are what to compare: absolute
numbers drift between runs on shared machines. Needs nginx and curl (Debian: nginx-light,
curl) and the quorus-http plugin.

    .venv/bin/python tests/benchmarks/transfer_vs_peers.py --size-mib 1024 --big-mib 4096 --runs 3
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MB = 1_000_000
MIB = 1024 * 1024
GNU_TIME = "/usr/bin/time"


@dataclass
class Case:
    group: str
    tool: str
    command: list[str]
    output: Path
    size: int
    walls: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [self.size / wall / MB for wall in self.walls]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        remaining = size
        while remaining:
            n = min(remaining, 16 * MIB)
            f.write(os.urandom(n))
            remaining -= n


def start_nginx(work: Path, www: Path) -> tuple[subprocess.Popen[bytes], int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is needed (Debian: apt-get install nginx-light)")
    port = free_port()
    conf_dir = work / "nginx"
    (conf_dir / "tmp").mkdir(parents=True)
    conf = conf_dir / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on;
  default_type application/octet-stream;
  client_body_temp_path {conf_dir}/tmp/body; proxy_temp_path {conf_dir}/tmp/proxy;
  fastcgi_temp_path {conf_dir}/tmp/fcgi; uwsgi_temp_path {conf_dir}/tmp/uwsgi;
  scgi_temp_path {conf_dir}/tmp/scgi;
  server {{ listen 127.0.0.1:{port}; root {www}; }}
}}
""")
    proc = subprocess.Popen(
        [nginx, "-p", str(conf_dir), "-e", str(conf_dir / "error.log"), "-c", str(conf),
         "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc, port


def timed(command: list[str], work: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one run of ``command``.

    The peak RSS comes from GNU time: a child forked straight from this (large) Python
    process would report this process's RSS as its own peak.
    """
    rss_file = work / "rss.txt"
    start = time.perf_counter()
    proc = subprocess.run([GNU_TIME, "-f", "%M", "-o", str(rss_file), *command],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({proc.returncode}): {proc.stderr.decode().strip()}")
    return wall, int(rss_file.read_text().split()[-1])


def run_case(case: Case, work: Path) -> None:
    case.output.unlink(missing_ok=True)
    subprocess.run(["sync"], check=True)
    wall, rss = timed(case.command, work)
    if case.output.stat().st_size != case.size:
        raise RuntimeError(f"{case.tool}: output has the wrong size")
    case.output.unlink()  # free its page cache before the next case runs
    case.walls.append(wall)
    case.rss_kib.append(rss)


def user_install(work: Path) -> str:
    """A virtualenv with what a user installs (``pip install quorus-core quorus-http``, no
    test tools), built from this checkout; returns its ``quorus`` command. Measuring the
    development environment instead would add the start-up cost of test-only packages that
    httpcore imports when present (trio)."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(REPO / "quorus-core"),
         str(REPO / "plugins" / "quorus-http")],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return str(venv / "bin" / "quorus")


def quorus_command(binary: str) -> Callable[[str, Path], list[str]]:
    def command(source: str, output: Path) -> list[str]:
        return [binary, "transfer", source, str(output), "--progress", "none", "--json"]

    return command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--big-mib", type=int, default=4096, help="file size for the RSS check")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    parser.add_argument("--quorus", help="the quorus command to measure (default: a fresh "
                        "virtualenv with quorus-core and quorus-http from this checkout)")
    args = parser.parse_args()
    if shutil.which("curl") is None or not Path(GNU_TIME).exists():
        raise SystemExit("curl and GNU time are needed (Debian: apt-get install curl time)")

    work = Path(tempfile.mkdtemp(prefix="quorus-bench-"))
    work.chmod(0o755)  # nginx's workers run as an unprivileged user
    try:
        report = measure(args, work)
    finally:
        shutil.rmtree(work)
    print(report)
    if args.markdown:
        args.markdown.write_text(report)
    return 0


def measure(args: argparse.Namespace, work: Path) -> str:
    """Make the files, start nginx, run every case; the Markdown report."""
    www, out = work / "www", work / "out"
    www.mkdir()
    out.mkdir()
    size, big = args.size_mib * MIB, args.big_mib * MIB
    data, big_data = www / "data.bin", www / "big.bin"
    print(f"installing quorus and making {args.size_mib} MiB and {args.big_mib} MiB files "
          f"in {work} ...", file=sys.stderr)
    quorus = quorus_command(args.quorus or user_install(work))
    make_file(data, size)
    data.chmod(0o644)
    nginx, port = start_nginx(work, www)
    url = f"http://127.0.0.1:{port}"
    try:
        cases = [
            Case("local", "cp + sync, then sha256sum",
                 ["bash", "-c", f"cp {data} {out}/cp.bin && sync && sha256sum {out}/cp.bin"],
                 out / "cp.bin", size),
            Case("local", "quorus transfer (verified, fsynced)",
                 quorus(str(data), out / "q-local.bin"), out / "q-local.bin", size),
            Case("http download", "curl -o (no verification)",
                 ["curl", "-sS", "-f", "-o", str(out / "curl.bin"), f"{url}/data.bin"],
                 out / "curl.bin", size),
            Case("http download", "curl -o, then sha256sum (verified by hand)",
                 ["bash", "-c", f"curl -sS -f -o {out}/curlsha.bin {url}/data.bin && "
                  f"sha256sum {out}/curlsha.bin"],
                 out / "curlsha.bin", size),
            Case("http download", "quorus transfer (verified, fsynced)",
                 quorus(f"{url}/data.bin", out / "q-http.bin"), out / "q-http.bin", size),
        ]
        big_cases = [
            Case("local", "quorus transfer, big file", quorus(str(big_data), out / "q-big.bin"),
                 out / "q-big.bin", big),
            Case("http download", "quorus transfer, big file",
                 quorus(f"{url}/big.bin", out / "q-bighttp.bin"), out / "q-bighttp.bin", big),
        ]
        for case in cases:  # warm-up: binaries, page cache, first connections
            run_case(case, work)
            case.walls.clear()
            case.rss_kib.clear()
        for round_no in range(args.runs):
            print(f"round {round_no + 1}/{args.runs}", file=sys.stderr)
            for case in cases:
                run_case(case, work)
        # The big file exists only for the RSS check, so that the timed rounds run with as
        # little of the machine's memory tied up in page cache as possible.
        with big_data.open("wb") as f:  # the data file repeated, cut to size
            while f.tell() < big:
                with data.open("rb") as src:
                    shutil.copyfileobj(src, f, 16 * MIB)
            f.truncate(big)
        big_data.chmod(0o644)
        for case in big_cases:
            run_case(case, work)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    return render(args, cases, big_cases)


def render(args: argparse.Namespace, cases: list[Case], big_cases: list[Case]) -> str:
    def med(case: Case) -> float:
        return statistics.median(case.rates())

    by_case = {(case.group, case.tool): case for case in cases}
    lines = [
        f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"- host: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        f"- file: {args.size_mib} MiB of random data; 1 warm-up round + {args.runs} measured "
        "rounds, every case once per round; MB/s = 10^6 B/s",
        "",
        "| case | tool | MB/s median | min | max | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for case in cases:
        rates = case.rates()
        lines.append(
            f"| {case.group} | {case.tool} | {med(case):.0f} | {min(rates):.0f} | "
            f"{max(rates):.0f} | {max(case.rss_kib) / 1024:.1f} |"
        )
    local_q = by_case[("local", "quorus transfer (verified, fsynced)")]
    http_q = by_case[("http download", "quorus transfer (verified, fsynced)")]
    cp = by_case[("local", "cp + sync, then sha256sum")]
    curl = by_case[("http download", "curl -o (no verification)")]
    small_rss = {c.group: max(c.rss_kib) for c in cases if c.tool.startswith("quorus")}
    lines += [
        "",
        "| ratio | value | target |",
        "|---|---:|---|",
        f"| HTTP download: quorus / curl throughput | {med(http_q) / med(curl):.2f} | >= 0.9 |",
        f"| HTTP download: quorus / (curl, then sha256sum) throughput | "
        f"{med(http_q) / med(by_case[('http download', 'curl -o, then sha256sum (verified by hand)')]):.2f} | (context) |",
        f"| local verified copy: quorus / (cp + sha256sum) throughput | "
        f"{med(local_q) / med(cp):.2f} | >= 1.0 |",
    ]
    for big_case in big_cases:
        rss_small = small_rss[big_case.group]
        rss_big = max(big_case.rss_kib)
        lines.append(
            f"| {big_case.group}: peak RSS {args.big_mib} MiB / {args.size_mib} MiB "
            f"({rss_big / 1024:.1f} / {rss_small / 1024:.1f} MiB) | {rss_big / rss_small:.2f} | "
            "< 100 MiB, within 1.10 |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
