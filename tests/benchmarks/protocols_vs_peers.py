"""Race `quorus transfer` against rclone and each protocol's native tool, for every protocol
and direction, in one run.

One random file (--size-mib, default 1 GiB) is served by private real servers on loopback,
started with the plugins' own test helpers: nginx (HTTP download), OpenSSH sshd (SFTP),
vsftpd plain and with explicit TLS (FTP, FTPS) and Samba smbd (SMB 3). Per protocol and
direction the cases are:

- Quorus: `quorus transfer SRC DST --checksum sha256:... --progress none` (SHA-256 verified,
  credentials passed as `env:` references, never in its arguments);
- rclone: :http: / copyurl, :sftp:, :ftp: (--multi-thread-streams 0: vsftpd answers rclone's
  ranged multi-thread reads with 426), :smb:;
- native tools: curl, OpenSSH `sftp` get/put (default cipher and aes128-gcm@openssh.com),
  `lftp` get/put, `smbclient` get/put -m SMB3.

Every round runs every case once (round-robin), so a slow phase of a shared machine hits all
cases alike; a warm-up round with a small file comes first (cold binaries, first logins).
Before each timed run the previous output is deleted and `sync` runs; the output is checked
by size, and by SHA-256 in the warm-up and first measured round. After every peer's run
`openssl dgst -sha256` of its output is timed apart, for a second table that compares the
same work on both sides (a peer's copy then its check, against Quorus verifying as it moves
the data). Each run is timed by wall clock with its peak RSS and CPU from GNU time. The
report gives MB/s (10^6 B/s) median, min and max per case, and the ratios the targets are
about: Quorus / best rclone (target >= 1.0), Quorus / best native tool (>= 0.8), Quorus peak
RSS (< 150 MiB). Needs root, GNU time, openssl,
rclone, curl, openssh-client, lftp, smbclient and the servers (nginx-light, openssh-server,
vsftpd, samba), and the test extras of the plugins (trustme) in the running interpreter.

    .venv/bin/python tests/benchmarks/protocols_vs_peers.py --size-mib 1024 --runs 3 \\
        --markdown protocols.md --json protocols.json

`--cases sftp,ftp:upload` narrows the run; `--quorus CMD` measures another quorus command than
a fresh virtualenv built from this checkout. Every server, account and temporary file is
removed on exit, also after an error, Ctrl-C or SIGTERM. Exit status 1 if a case failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MB = 1_000_000
MIB = 1024 * 1024
GNU_TIME = "/usr/bin/time"
PROTOCOLS = ("http", "sftp", "ftp", "ftps", "smb")
#: Uploads Quorus finishes by having the server write the file to disk (SFTP's
#: fsync@openssh.com, SMB's FLUSH): the same work for a peer includes a sync of its copy.
DURABLE_UPLOADS = {("sftp", "upload"), ("smb", "upload")}
DIRECTIONS = ("download", "upload")
RCLONE_TARGET = 1.0  # Quorus / rclone
NATIVE_TARGET = 0.8  # Quorus / best native tool
RSS_TARGET_MIB = 150
SETTLE_SECONDS = 5.0


@dataclass(frozen=True)
class Payload:
    """A file every server serves under ``name``; ``path`` is its local copy."""

    name: str
    path: Path
    size: int
    sha256: str


Build = Callable[[Payload], tuple[list[str], Path]]  # the command and the file it writes


@dataclass
class Case:
    protocol: str
    direction: str
    tool: str
    kind: str  # "quorus", "rclone" or "native"
    build: Build
    env: dict[str, str] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    #: Seconds ``openssl dgst -sha256`` took over what a peer wrote, right after each run,
    #: after ``sync FILE`` for an upload Quorus makes durable (peers only).
    check_seconds: list[float] = field(default_factory=list)
    failure: str | None = None

    @property
    def group(self) -> str:
        return f"{self.protocol} {self.direction}"

    def rates(self, size: int) -> list[float]:
        return [size / s / MB for s in self.seconds]

    def median(self, size: int) -> float | None:
        return statistics.median(self.rates(size)) if self.seconds and not self.failure else None

    def checked_median(self, size: int) -> float | None:
        """MB/s of the run followed by ``openssl dgst -sha256`` of its output (Quorus: its
        own rate, which includes verifying)."""
        if self.kind == "quorus":
            return self.median(size)
        if self.failure or not self.check_seconds:
            return None
        return statistics.median(
            size / (s + c) / MB for s, c in zip(self.seconds, self.check_seconds, strict=True))


class CaseFailed(Exception):
    pass


# --- processes ---------------------------------------------------------------------------


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc (servers fork one per client)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


class Servers:
    """The running servers' main pids, to wait after each run until the per-client
    processes of the previous client are gone (they may still use CPU)."""

    def __init__(self) -> None:
        self.baseline: dict[int, set[int]] = {}

    def watch(self, server: object) -> None:
        process = getattr(server, "_process", None)  # the helpers' Popen, if it has one
        if isinstance(process, subprocess.Popen):
            self.baseline[process.pid] = descendants(process.pid)

    def settle(self) -> None:
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            if all(descendants(pid) <= base for pid, base in self.baseline.items()):
                return
            time.sleep(0.02)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def run_once(case: Case, payload: Payload, work: Path, timeout: float, verify: bool) -> None:
    """Time one run of ``case``; append its numbers or raise :class:`CaseFailed`."""
    command, output = case.build(payload)
    output.unlink(missing_ok=True)
    subprocess.run(["sync"], check=True)
    stats, log = work / "time.txt", work / "run.log"
    stats.unlink(missing_ok=True)
    with log.open("wb") as out:
        started = time.perf_counter()
        # A session of its own: on a timeout or Ctrl-C the whole tool tree is killed.
        process = subprocess.Popen(
            [GNU_TIME, "-f", "%M %U %S", "-o", str(stats), *command],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **case.env}, start_new_session=True,
        )
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(process)
            raise CaseFailed(f"timed out after {timeout:g} s") from None
        except BaseException:
            kill_group(process)
            raise
        wall = time.perf_counter() - started
    try:
        if code != 0:
            tail = " / ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            raise CaseFailed(f"exit {code}: {tail[-400:]}")
        if not output.exists() or output.stat().st_size != payload.size:
            found = output.stat().st_size if output.exists() else "no file"
            raise CaseFailed(f"output has the wrong size ({found}, expected {payload.size})")
        if case.kind != "quorus":
            check = 0.0
            if (case.protocol, case.direction) in DURABLE_UPLOADS:
                # Quorus's upload ends with the server writing the file to disk (SFTP
                # fsync@openssh.com, SMB FLUSH); a peer's copy is durable once this returns.
                started = time.perf_counter()
                subprocess.run(["sync", str(output)], check=True)  # fsync of that file
                check += time.perf_counter() - started
            # What a user who checks a peer's copy runs next (on the server's host for an
            # upload; the file is the same one here). Its page cache is warm, as it would be.
            started = time.perf_counter()
            # openssl, not coreutils' sha256sum: on Debian 12 the latter does not use the
            # CPU's SHA instructions (2.1 s per GiB here against 0.7).
            checked = subprocess.run(["openssl", "dgst", "-sha256", "-r", str(output)],
                                     capture_output=True, text=True, check=False)
            check += time.perf_counter() - started
            if checked.returncode != 0:
                raise CaseFailed(f"openssl dgst failed: {checked.stderr.strip()[-200:]}")
            if checked.stdout.split()[0] != payload.sha256:
                raise CaseFailed("output differs from the source (openssl dgst)")
        if verify and sha256_of(output) != payload.sha256:
            raise CaseFailed("output differs from the source (SHA-256)")
    finally:
        output.unlink(missing_ok=True)  # frees its page cache before the next case
    rss, user, system = stats.read_text().split()[-3:]
    case.seconds.append(wall)
    case.rss_kib.append(int(rss))
    case.cpu.append(float(user) + float(system))
    if case.kind != "quorus":
        case.check_seconds.append(check)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 * MIB):
            digest.update(block)
    return digest.hexdigest()


def make_payload(directory: Path, name: str, size: int) -> Payload:
    path = directory / name
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for offset in range(0, size, MIB):
            block = os.urandom(min(MIB, size - offset))
            digest.update(block)
            f.write(block)
    path.chmod(0o644)
    return Payload(name, path, size, digest.hexdigest())


def serve(payloads: list[Payload], directory: Path) -> None:
    """Hard links: one inode, one copy in the page cache for every server."""
    for payload in payloads:
        os.link(payload.path, directory / payload.name)


def obscure(secret: str) -> str:
    return subprocess.run(["rclone", "obscure", secret], capture_output=True, text=True,
                          check=True).stdout.strip()


def user_install(work: Path) -> list[str]:
    """A virtualenv with what a user installs (quorus-core and the protocol plugins, no test
    tools), built from this checkout; its ``quorus`` command. The development environment
    would add the import cost of test-only packages (trio) to every start."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    packages = [REPO / "quorus-core", *(REPO / "plugins" / f"quorus-{name}"
                                        for name in ("http", "sftp", "ftp", "smb"))]
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *map(str, packages)],
                   check=True, stdout=subprocess.DEVNULL)
    return [str(venv / "bin" / "quorus")]


# --- cases per protocol ------------------------------------------------------------------


@dataclass
class Setup:
    """What every protocol's cases share."""

    work: Path
    out: Path  # downloads land here
    quorus: list[str]
    quorus_extra: list[str]
    rclone: list[str]
    stack: contextlib.ExitStack
    servers: Servers
    payloads: list[Payload]
    notes: list[str]
    secrets: list[str] = field(default_factory=list)  # must never appear in a command line

    def quorus_case(self, protocol: str, direction: str, source: Callable[[Payload], str],
                    target: Callable[[Payload], str], output: Callable[[Payload], Path],
                    options: list[str], env: dict[str, str] | None = None) -> Case:
        def build(p: Payload) -> tuple[list[str], Path]:
            return ([*self.quorus, "transfer", source(p), target(p), "--checksum",
                     f"sha256:{p.sha256}", "--progress", "none", *options,
                     *self.quorus_extra], output(p))

        return Case(protocol, direction, "quorus transfer (SHA-256 verified)", "quorus", build,
                    env or {})


def http_cases(s: Setup) -> list[Case]:
    from quorus.protocols.http.testing import running_nginx

    server = s.stack.enter_context(running_nginx(s.work / "nginx"))
    serve(s.payloads, server.www / "public")

    def url(p: Payload) -> str:
        return str(server.url(f"/public/{p.name}"))

    out = s.out
    return [
        s.quorus_case("http", "download", url, lambda p: str(out / "q-http.bin"),
                      lambda p: out / "q-http.bin", []),
        Case("http", "download", "curl -o", "native",
             lambda p: (["curl", "-sS", "-f", "-o", str(out / "curl.bin"), url(p)],
                        out / "curl.bin")),
        Case("http", "download", "rclone copyurl (1 stream)", "rclone",
             lambda p: ([*s.rclone, "copyurl", url(p), str(out / "rcu.bin")], out / "rcu.bin")),
        Case("http", "download", "rclone :http: (default multi-thread)", "rclone",
             lambda p: ([*s.rclone, "copyto", f":http:{p.name}", str(out / "rch.bin"),
                         "--http-url", server.url("/public/")], out / "rch.bin")),
    ]


def sftp_cases(s: Setup) -> list[Case]:
    from quorus.protocols.sftp.testing import OpenSshServer

    server = OpenSshServer(s.work / "ssh")
    s.stack.callback(server.stop)
    server.start()
    s.servers.watch(server)
    files, out = server.files, s.out
    serve(s.payloads, files)
    key, known = str(server.client_key), str(server.known_hosts)
    ssh = ["-F", "/dev/null", "-i", key, "-o", "BatchMode=yes", "-o",
           f"UserKnownHostsFile={known}", "-o", "LogLevel=ERROR"]
    rclone = ["--sftp-host", server.host, "--sftp-port", str(server.port), "--sftp-user",
              server.username, "--sftp-key-file", key, "--sftp-known-hosts-file", known,
              "--sftp-disable-hashcheck", "--sftp-shell-type", "unix"]
    options = ["-o", f"sftp.private_key={key}", "-o", f"sftp.known_hosts={known}",
               "-o", "sftp.agent=false"]

    def sftp(name: str, line: Callable[[Payload], str], output: Callable[[Payload], Path],
             *extra: str) -> Build:
        def build(p: Payload) -> tuple[list[str], Path]:
            batch = s.work / f"{name}.batch"
            batch.write_text(line(p) + "\n")
            return (["sftp", "-q", *ssh, *extra, "-P", str(server.port), "-b", str(batch),
                     f"{server.username}@{server.host}"], output(p))

        return build

    gcm = ("-c", "aes128-gcm@openssh.com")
    def up(name: str) -> Callable[[Payload], Path]:
        return lambda _p: files / name

    return [
        s.quorus_case("sftp", "download", lambda p: server.url(str(files / p.name)),
                      lambda p: str(out / "q-sftp.bin"), lambda p: out / "q-sftp.bin", options),
        Case("sftp", "download", "OpenSSH sftp get", "native",
             sftp("get", lambda p: f"get {files / p.name} {out / 'sftp.bin'}",
                  lambda p: out / "sftp.bin")),
        Case("sftp", "download", "OpenSSH sftp get -c aes128-gcm", "native",
             sftp("getg", lambda p: f"get {files / p.name} {out / 'sftpg.bin'}",
                  lambda p: out / "sftpg.bin", *gcm)),
        Case("sftp", "download", "rclone :sftp:", "rclone",
             lambda p: ([*s.rclone, "copyto", f":sftp:{files / p.name}", str(out / "rs.bin"),
                         *rclone], out / "rs.bin")),
        s.quorus_case("sftp", "upload", lambda p: str(p.path),
                      lambda p: server.url(str(files / "up-quorus.bin")), up("up-quorus.bin"),
                      options),
        Case("sftp", "upload", "OpenSSH sftp put", "native",
             sftp("put", lambda p: f"put {p.path} {files / 'up-sftp.bin'}", up("up-sftp.bin"))),
        Case("sftp", "upload", "OpenSSH sftp put -c aes128-gcm", "native",
             sftp("putg", lambda p: f"put {p.path} {files / 'up-sftpg.bin'}",
                  up("up-sftpg.bin"), *gcm)),
        Case("sftp", "upload", "rclone :sftp:", "rclone",
             lambda p: ([*s.rclone, "copyto", str(p.path), f":sftp:{files / 'up-rclone.bin'}",
                         *rclone], files / "up-rclone.bin")),
    ]


def ftp_cases(s: Setup, tls: bool) -> list[Case]:
    from quorus.protocols.ftp.testing import VsftpdServer

    server = s.stack.enter_context(VsftpdServer(s.work / ("ftps" if tls else "ftp"), tls=tls))
    s.servers.watch(server)
    files, out, scheme = server.files, s.out, server.scheme
    serve(s.payloads, files)
    s.secrets.append(server.password)
    secret = f"QB_{scheme.upper()}_PASSWORD"
    env = {secret: server.password, "LFTP_PASSWORD": server.password,
           "RCLONE_FTP_PASS": obscure(server.password)}
    options = ["-o", f"{scheme}.username={server.username}", "-o", f"{scheme}.password=env:{secret}"]
    settings = ("set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; "
                "set xfer:clobber yes; set ftp:passive-mode yes; ")
    rclone = ["--ftp-host", server.host, "--ftp-port", str(server.port), "--ftp-user",
              server.username, "--multi-thread-streams", "0"]
    if tls:
        options += ["-o", f"ftps.ca_bundle={server.ca_bundle}"]
        settings += (f"set ftp:ssl-force yes; set ftp:ssl-protect-data yes; "
                     f"set ssl:ca-file {server.ca_bundle}")
        # rclone's FTP backend ignores --ca-cert, so it cannot be given the private CA; its
        # TLS 1.3 handshake with vsftpd fails ("tls: illegal parameter").
        rclone += ["--ftp-explicit-tls", "--ftp-no-check-certificate", "--ftp-disable-tls13"]
    else:
        settings += "set ftp:ssl-allow no"

    def lftp(command: str) -> list[str]:
        return ["lftp", "--env-password", "-u", server.username, "-p", str(server.port),
                "-e", f"{settings}; {command}; bye", server.host]

    def up(name: str) -> Callable[[Payload], Path]:
        return lambda _p: files / name

    return [
        s.quorus_case(scheme, "download", lambda p: server.url(f"/files/{p.name}"),
                      lambda p: str(out / "q-ftp.bin"), lambda p: out / "q-ftp.bin", options,
                      env),
        Case(scheme, "download", "lftp get", "native",
             lambda p: (lftp(f"get /files/{p.name} -o {out / 'lftp.bin'}"), out / "lftp.bin"),
             env),
        Case(scheme, "download", "rclone :ftp: --multi-thread-streams 0", "rclone",
             lambda p: ([*s.rclone, "copyto", f":ftp:files/{p.name}", str(out / "rf.bin"),
                         *rclone], out / "rf.bin"), env),
        s.quorus_case(scheme, "upload", lambda p: str(p.path),
                      lambda p: server.url("/files/up-quorus.bin"), up("up-quorus.bin"),
                      options, env),
        Case(scheme, "upload", "lftp put", "native",
             lambda p: (lftp(f"put {p.path} -o /files/up-lftp.bin"), files / "up-lftp.bin"),
             env),
        Case(scheme, "upload", "rclone :ftp:", "rclone",
             lambda p: ([*s.rclone, "copyto", str(p.path), ":ftp:files/up-rclone.bin",
                         *rclone], files / "up-rclone.bin"), env),
    ]


def smb_cases(s: Setup) -> list[Case]:
    from quorus.protocols.smb.testing import SHARE, SambaServer

    server = SambaServer(s.work / "smb")
    s.stack.callback(server.stop)
    server.start()
    s.servers.watch(server)
    s.secrets.append(server.password)
    share, out = server.share_path(SHARE), s.out
    serve(s.payloads, share)
    auth = s.work / "smbclient.auth"  # smbclient reads the password from a file, not argv
    auth.touch(mode=0o600)
    auth.write_text(f"username = {server.username}\npassword = {server.password}\n")
    conf = s.work / "smbclient.conf"  # no system smb.conf
    conf.write_text("[global]\n")
    env = {"QB_SMB_PASSWORD": server.password, "RCLONE_SMB_PASS": obscure(server.password)}
    smbclient = ["smbclient", "-s", str(conf), f"//{server.host}/{SHARE}", "-p",
                 str(server.port), "-A", str(auth), "-m", "SMB3"]
    rclone = ["--smb-host", server.host, "--smb-port", str(server.port), "--smb-user",
              server.username]
    options = ["-o", f"smb.username={server.username}", "-o", "smb.password=env:QB_SMB_PASSWORD"]
    cases = [
        s.quorus_case("smb", "download", lambda p: server.url(p.name),
                      lambda p: str(out / "q-smb.bin"), lambda p: out / "q-smb.bin", options, env),
        Case("smb", "download", "smbclient get -m SMB3", "native",
             lambda p: ([*smbclient, "-c", f"get {p.name} {out / 'smbc.bin'}"],
                        out / "smbc.bin")),
        Case("smb", "download", "rclone :smb:", "rclone",
             lambda p: ([*s.rclone, "copyto", f":smb:{SHARE}/{p.name}", str(out / "rsmb.bin"),
                         *rclone], out / "rsmb.bin"), env),
        s.quorus_case("smb", "upload", lambda p: str(p.path), lambda p: server.url("up-quorus.bin"),
                      lambda p: share / "up-quorus.bin", options, env),
        Case("smb", "upload", "smbclient put -m SMB3", "native",
             lambda p: ([*smbclient, "-c", f"put {p.path} up-smbclient.bin"],
                        share / "up-smbclient.bin")),
        Case("smb", "upload", "rclone :smb:", "rclone",
             lambda p: ([*s.rclone, "copyto", str(p.path), f":smb:{SHARE}/up-rclone.bin",
                         *rclone], share / "up-rclone.bin"), env),
    ]
    if subprocess.run(["rclone", "help", "backend", "smb"], capture_output=True,
                      check=False).returncode != 0:
        s.notes.append("this rclone has no smb backend: rclone SMB cases skipped")
        cases = [case for case in cases if case.kind != "rclone"]
    return cases


# --- the run -----------------------------------------------------------------------------


@dataclass
class Result:
    size: int
    warm_mib: int
    runs: int
    quorus: str  # what was measured, for the report
    cases: list[Case]
    notes: list[str]
    started: str
    load: list[tuple[float, float, float]]
    versions: dict[str, str]


def selected_cases(text: str) -> set[tuple[str, str]]:
    """``sftp,ftp:upload`` -> {(sftp, download), (sftp, upload), (ftp, upload)}."""
    chosen: set[tuple[str, str]] = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        protocol, _, direction = item.partition(":")
        if protocol not in PROTOCOLS or direction not in ("", *DIRECTIONS):
            raise SystemExit(f"unknown case {item!r}: use {', '.join(PROTOCOLS)}, optionally "
                             "with :download or :upload")
        chosen |= {(protocol, d) for d in DIRECTIONS if direction in ("", d)}
    return chosen - {("http", "upload")}


def tool_versions() -> dict[str, str]:
    commands = {"rclone": ["rclone", "version"], "curl": ["curl", "--version"],
                "openssh": ["ssh", "-V"], "lftp": ["lftp", "--version"],
                "smbclient": ["smbclient", "--version"]}
    versions = {}
    for name, command in commands.items():
        with contextlib.suppress(OSError):
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            first = (done.stdout or done.stderr).strip().splitlines()[0]
            versions[name] = " ".join(first.split()[:2]) if name == "curl" else first
    return versions


def measure(args: argparse.Namespace, work: Path, stack: contextlib.ExitStack) -> Result:
    chosen = selected_cases(args.cases)
    src, out = work / "src", work / "out"
    src.mkdir()
    out.mkdir()
    notes: list[str] = []
    if args.quorus:
        quorus, described = shlex.split(args.quorus), f"`{args.quorus}`"
    else:
        print("installing quorus in a fresh virtualenv ...", file=sys.stderr)
        quorus = user_install(work)
        described = ("a fresh virtualenv with quorus-core, quorus-http, quorus-sftp, quorus-ftp "
                     "and quorus-smb from this checkout (no test tools)")
    print(f"making a {args.size_mib} MiB file in {work} ...", file=sys.stderr)
    payloads = [make_payload(src, "data.bin", args.size_mib * MIB)]
    if args.warm_mib:
        payloads.append(make_payload(src, "warm.bin", args.warm_mib * MIB))
    data = payloads[0]
    rclone_conf = work / "rclone.conf"  # empty: only the backends given on the command line
    rclone_conf.touch()
    setup = Setup(work, out, quorus, shlex.split(args.quorus_args), ["rclone", "--config",
                  str(rclone_conf), "-q", "--retries", "1", "--low-level-retries", "2"], stack,
                  Servers(), payloads, notes)
    makers: dict[str, Callable[[Setup], list[Case]]] = {
        "http": http_cases, "sftp": sftp_cases, "ftp": lambda s: ftp_cases(s, tls=False),
        "ftps": lambda s: ftp_cases(s, tls=True), "smb": smb_cases,
    }
    cases: list[Case] = []
    for protocol in PROTOCOLS:
        if not any(p == protocol for p, _ in chosen):
            continue
        print(f"starting the {protocol} server ...", file=sys.stderr)
        try:
            made = makers[protocol](setup)
        except Exception as exc:  # one server that cannot start does not stop the others
            notes.append(f"{protocol}: no cases, its server did not start: "
                         f"{str(exc).strip()[:300]}")
            continue
        for case in made:
            command = case.build(data)[0]
            if any(secret in arg for secret in setup.secrets for arg in command):
                raise RuntimeError(f"{case.group} / {case.tool}: a password in the arguments")
            program = command[0]
            if (case.protocol, case.direction) not in chosen:
                continue
            if shutil.which(program) is None:
                notes.append(f"{case.group} / {case.tool}: skipped, {program} is not installed")
                continue
            cases.append(case)
    if not cases:
        raise SystemExit("no cases to run: " + "; ".join(notes))

    load = [os.getloadavg()]
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    rounds: list[tuple[str, Payload]] = [(f"{r + 1}/{args.runs}", data) for r in range(args.runs)]
    if args.warm_mib:
        rounds.insert(0, ("warm-up", payloads[1]))
    for number, (label, payload) in enumerate(rounds):
        verify = args.verify == "all" or number < (2 if args.warm_mib else 1)
        for case in cases:
            if case.failure:
                continue
            try:
                run_once(case, payload, work, args.timeout, verify)
            except CaseFailed as exc:
                case.failure = f"round {label}: {exc}"
                print(f"[{label}] {case.group} / {case.tool}: FAILED {exc}", file=sys.stderr)
                continue
            finally:
                setup.servers.settle()
            print(f"[{label}] {case.group} / {case.tool}: "
                  f"{payload.size / case.seconds[-1] / MB:.0f} MB/s, peak RSS "
                  f"{case.rss_kib[-1] / 1024:.0f} MiB", file=sys.stderr, flush=True)
        if label == "warm-up":
            for case in cases:
                case.seconds.clear()
                case.rss_kib.clear()
                case.cpu.clear()
                case.check_seconds.clear()
    load.append(os.getloadavg())
    described += f", commit {git_commit()}"
    if args.quorus_args:
        described += f", every transfer with `{args.quorus_args}`"
    return Result(data.size, args.warm_mib, args.runs, described, cases, notes, started, load,
                  tool_versions())


# --- the report --------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    group: str
    quorus: float | None
    rclone: tuple[str, float] | None
    native: tuple[str, float] | None
    rss_mib: float | None
    #: The best rclone and native variants with ``openssl dgst -sha256`` of their output counted.
    checked_rclone: tuple[str, float] | None = None
    checked_native: tuple[str, float] | None = None

    def ratio(self, peer: tuple[str, float] | None) -> float | None:
        return self.quorus / peer[1] if self.quorus and peer else None


def targets(result: Result) -> list[Target]:
    found = []
    for group in dict.fromkeys(case.group for case in result.cases):
        members = [case for case in result.cases if case.group == group]

        def best(kind: str, members: list[Case] = members,
                 checked: bool = False) -> tuple[str, float] | None:
            rated = [(c.tool, m) for c in members if c.kind == kind and (m := (
                c.checked_median(result.size) if checked else c.median(result.size)))
                is not None]
            return max(rated, key=lambda item: item[1]) if rated else None

        quorus = next((c for c in members if c.kind == "quorus"), None)
        rss = max(quorus.rss_kib) / 1024 if quorus and quorus.rss_kib else None
        q_median = quorus.median(result.size) if quorus else None
        found.append(Target(group, q_median, best("rclone"), best("native"), rss,
                            best("rclone", checked=True), best("native", checked=True)))
    return found


def verdict(value: float | None, target: float, above: bool = True) -> str:
    if value is None:
        return "n/a"
    met = value >= target if above else value < target
    return "met" if met else "**NOT met**"


def render(result: Result) -> str:
    size_mib = result.size // MIB
    (a1, a5, a15), (b1, b5, b15) = result.load
    lines = [
        f"# Quorus vs rclone and native tools, {size_mib} MiB over loopback",
        "",
        f"- date: {result.started}; host: {platform.node()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        f"- load average (1/5/15 min): {a1:.2f} {a5:.2f} {a15:.2f} at the start, "
        f"{b1:.2f} {b5:.2f} {b15:.2f} at the end",
        f"- file: {size_mib} MiB of random data; "
        + (f"a warm-up round with {result.warm_mib} MiB (discarded), then " if result.warm_mib
           else "")
        + f"{result.runs} measured round{'s' if result.runs != 1 else ''}, every case once per "
        "round (round-robin); "
        "MB/s = 10^6 B/s, wall clock of the whole command",
        f"- quorus: {result.quorus}",
        "- tools: " + "; ".join(f"{v}" for v in result.versions.values()),
        "",
        "| protocol | direction | tool | MB/s median | min | max | peak RSS MiB | CPU s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for case in result.cases:
        rates = case.rates(result.size)
        if case.failure or not rates:
            lines.append(f"| {case.protocol} | {case.direction} | {case.tool} | FAILED | | | | |")
            continue
        lines.append(
            f"| {case.protocol} | {case.direction} | {case.tool} | {statistics.median(rates):.0f} "
            f"| {min(rates):.0f} | {max(rates):.0f} | {max(case.rss_kib) / 1024:.0f} | "
            f"{statistics.median(case.cpu):.2f} |")
    lines += [
        "",
        f"Targets: Quorus at least rclone's throughput (ratio >= {RCLONE_TARGET}), at least "
        f"{NATIVE_TARGET}x the best native tool, peak RSS under {RSS_TARGET_MIB} MiB "
        "(medians; the best rclone and native variant of each case).",
        "",
        "| case | Quorus MB/s | best rclone | Quorus / rclone | target | best native tool "
        "| Quorus / native | target | Quorus peak RSS MiB | target |",
        "|---|---:|---|---:|---|---|---:|---|---:|---|",
    ]

    def cell(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for t in targets(result):
        r_ratio, n_ratio = t.ratio(t.rclone), t.ratio(t.native)
        rclone = f"{t.rclone[0]} ({t.rclone[1]:.0f})" if t.rclone else "-"
        native = f"{t.native[0]} ({t.native[1]:.0f})" if t.native else "-"
        lines.append(
            f"| {t.group} | {cell(t.quorus, 0)} | {rclone} | {cell(r_ratio)} | "
            f"{verdict(r_ratio, RCLONE_TARGET)} | {native} | {cell(n_ratio)} | "
            f"{verdict(n_ratio, NATIVE_TARGET)} | {cell(t.rss_mib, 0)} | "
            f"{verdict(t.rss_mib, RSS_TARGET_MIB, above=False)} |")
    lines += [
        "",
        "The same work on both sides: each peer's run followed by `openssl dgst -sha256` of "
        "the file it wrote (page cache warm), and for SFTP and SMB uploads by `sync FILE` of it "
        "first (Quorus has the server write those to disk before it reports success), against "
        "Quorus, which verifies while it moves the data (not a target of the issue; it tells "
        "what the gap is made of):",
        "",
        "| case | Quorus MB/s | best rclone + SHA-256 | Quorus / it "
        "| best native tool + SHA-256 | Quorus / it |",
        "|---|---:|---|---:|---|---:|",
    ]
    for t in targets(result):
        rclone = (f"{t.checked_rclone[0]} ({t.checked_rclone[1]:.0f})"
                  if t.checked_rclone else "-")
        native = (f"{t.checked_native[0]} ({t.checked_native[1]:.0f})"
                  if t.checked_native else "-")
        lines.append(
            f"| {t.group} | {cell(t.quorus, 0)} | {rclone} | {cell(t.ratio(t.checked_rclone))} "
            f"| {native} | {cell(t.ratio(t.checked_native))} |")
    lines += [
        "",
        "Notes:",
        *(["- Small file: the start-up of each tool (Python's for Quorus) dominates these "
           "numbers; the targets are about 1 GiB."] if result.size < 256 * MIB else []),
        "- Quorus hashes every byte and checks it against `--checksum`, writes a partial file "
        "and renames it into place; the other tools do not verify (this script runs "
        "`openssl dgst -sha256` over their outputs afterwards, timed apart for the second table). "
        "Quorus's SMB client signs every message by default "
        "(`smb.signing=required`).",
        "- rclone's FTP downloads run with `--multi-thread-streams 0`: vsftpd answers the "
        "ranged reads of its multi-thread mode with 426, which rclone 1.60 treats as an error. "
        "Over FTPS it runs with `--ftp-no-check-certificate` (its FTP backend ignores "
        "`--ca-cert`) and `--ftp-disable-tls13` (its TLS 1.3 handshake with vsftpd fails); "
        "Quorus and lftp verify the server's certificate against the test CA.",
        *(f"- FAILED {c.group} / {c.tool}: {c.failure}" for c in result.cases if c.failure),
        *(f"- {note}" for note in result.notes),
    ]
    return "\n".join(lines) + "\n"


def git_commit() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def as_json(result: Result) -> dict[str, Any]:
    return {
        "size_bytes": result.size, "warm_mib": result.warm_mib, "runs": result.runs,
        "started": result.started, "host": platform.node(), "cpus": os.cpu_count(),
        "load_average": result.load, "quorus": result.quorus,
        "versions": result.versions, "notes": result.notes,
        "cases": [{
            "protocol": c.protocol, "direction": c.direction, "tool": c.tool, "kind": c.kind,
            "seconds": c.seconds, "mb_per_s": c.rates(result.size),
            "median_mb_per_s": c.median(result.size), "peak_rss_kib": c.rss_kib,
            "cpu_seconds": c.cpu, "sha256_check_seconds": c.check_seconds,
            "median_mb_per_s_with_sha256_check": c.checked_median(result.size),
            "failure": c.failure,
        } for c in result.cases],
        "targets": [{
            "case": t.group, "quorus_mb_per_s": t.quorus,
            "best_rclone": t.rclone and {"tool": t.rclone[0], "mb_per_s": t.rclone[1]},
            "best_native": t.native and {"tool": t.native[0], "mb_per_s": t.native[1]},
            "quorus_over_rclone": t.ratio(t.rclone), "quorus_over_native": t.ratio(t.native),
            "quorus_over_rclone_with_sha256_check": t.ratio(t.checked_rclone),
            "quorus_over_native_with_sha256_check": t.ratio(t.checked_native),
            "quorus_peak_rss_mib": t.rss_mib,
            "rclone_target_met": (r := t.ratio(t.rclone)) is not None and r >= RCLONE_TARGET,
            "native_target_met": (n := t.ratio(t.native)) is not None and n >= NATIVE_TARGET,
            "rss_target_met": t.rss_mib is not None and t.rss_mib < RSS_TARGET_MIB,
        } for t in targets(result)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--warm-mib", type=int,
                        help="file size of the warm-up round (default: 64, at most --size-mib; "
                        "0: no warm-up)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", default=",".join(PROTOCOLS),
                        help="protocols to race, e.g. sftp,ftp or smb:upload (default: all)")
    parser.add_argument("--verify", choices=("first", "all"), default="first",
                        help="SHA-256 of every output in the warm-up and first round, or always")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per command")
    parser.add_argument("--quorus", help="the quorus command to measure (default: a fresh "
                        "virtualenv with quorus-core and the plugins from this checkout)")
    parser.add_argument("--quorus-args", default="",
                        help="extra arguments for every quorus transfer, e.g. '--streams 1'")
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.warm_mib is None:
        args.warm_mib = min(64, args.size_mib)
    if os.geteuid() != 0:
        raise SystemExit("run as root: sshd, vsftpd and smbd need it")
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit("GNU time is needed for the peak RSS (Debian: apt-get install time)")

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks below

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    work = Path(tempfile.mkdtemp(prefix="quorus-protocols-bench-"))
    work.chmod(0o755)  # vsftpd's account and nginx must reach the served files
    try:
        with contextlib.ExitStack() as stack:
            result = measure(args, work, stack)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = render(result)
    print(report)
    if args.markdown:
        args.markdown.write_text(report)
    if args.json:
        args.json.write_text(json.dumps(as_json(result), indent=2) + "\n")
    return 1 if any(case.failure for case in result.cases) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: servers stopped, temporary files removed", file=sys.stderr)
        sys.exit(130)
