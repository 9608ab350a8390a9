"""A private Samba ``smbd`` for tests and benchmarks, on a free loopback port.

Everything the server needs (smb.conf, the tdbsam password database, lock, state, cache, pid
and socket directories, logs and the shares' directories) lives below one directory; no
system service or system configuration is touched. The server runs in the foreground in a
session of its own, so :meth:`SambaServer.kill` can stop it together with the per-client
processes it forks, and :meth:`SambaServer.start` brings it back on the same port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from quorus.core.testing.fixtures import free_port

SMBD = shutil.which("smbd") or "/usr/sbin/smbd"
SMBPASSWD = shutil.which("smbpasswd") or "/usr/bin/smbpasswd"
_STARTUP_SECONDS = 15.0

#: The share every server has: readable and writable by the fixture's user.
SHARE = "data"
#: A share the user may read but not write: the server answers ACCESS_DENIED to writes.
READ_ONLY_SHARE = "readonly"
#: A share whose traffic must be encrypted (SMB 3 encryption, ``smb encrypt = required``).
ENCRYPTED_SHARE = "sealed"

_GLOBAL = """\
[global]
  server role = standalone server
  smb ports = {port}
  interfaces = 127.0.0.1
  bind interfaces only = yes
  disable netbios = yes
  private dir = {root}/private
  lock directory = {root}/lock
  state directory = {root}/state
  cache directory = {root}/cache
  pid directory = {root}/pid
  ncalrpc dir = {root}/ncalrpc
  binddns dir = {root}/binddns
  passdb backend = tdbsam:{root}/private/passdb.tdb
  log file = {root}/log/log.%m
  log level = 1
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  map to guest = never
  server min protocol = SMB2_02
  server signing = {signing}
  smb2 max read = {max_io}
  smb2 max write = {max_io}
  smb2 max trans = {max_io}
"""

_SHARE = """\
[{name}]
  path = {path}
  read only = {read_only}
  valid users = {user}
  smb encrypt = {encrypt}
"""


def samba_available() -> str | None:
    """Why a private smbd cannot be started here, or ``None`` when it can."""
    for tool, package in ((SMBD, "samba"), (SMBPASSWD, "samba-common-bin")):
        if not os.access(tool, os.X_OK):
            return f"{tool} is not installed (Debian package {package})"
    if os.geteuid() != 0:
        return "a private smbd needs root here (it serves files as the logged-on user)"
    return None


@dataclass
class SambaServer:
    """A private ``smbd``: use as a context manager, or call :meth:`start` and :meth:`stop`.

    ``root`` holds configuration and state; the shares' files are under ``root/shares``.
    The one user, ``root`` on this machine, logs on with ``password`` (NTLM).
    ``signing`` is smbd's ``server signing`` (``default`` or ``mandatory``); ``max_io`` caps
    the read and write sizes the server offers.
    """

    root: Path
    password: str = "quorus-smb-test-secret"
    signing: str = "default"
    max_io: int = 8 * 1024 * 1024
    extra_shares: dict[str, Path] = field(default_factory=dict)
    host: str = "127.0.0.1"
    username: str = "root"
    port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _configured: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        if not self.port:
            self.port = free_port()

    # --- where things are ----------------------------------------------------------------

    def share_path(self, share: str = SHARE) -> Path:
        """The directory on disk that ``share`` serves."""
        if share in self.extra_shares:
            return self.extra_shares[share]
        return self.root / "shares" / share

    def url(self, path: str = "", share: str = SHARE) -> str:
        """``smb://host:port/share/path`` without credentials."""
        return f"smb://{self.host}:{self.port}/{share}/{path.lstrip('/')}"

    @property
    def config(self) -> Path:
        return self.root / "smb.conf"

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's logs, for failure messages."""
        texts = []
        for path in sorted((self.root / "log").glob("*")):
            with contextlib.suppress(OSError):
                texts.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(texts[-lines:])

    # --- life cycle ----------------------------------------------------------------------

    def write_config(self) -> None:
        """Create the directories, smb.conf and the password database."""
        for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc", "binddns", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "private").chmod(0o700)
        shares = {SHARE: ("no", "default"), READ_ONLY_SHARE: ("yes", "default"),
                  ENCRYPTED_SHARE: ("no", "required")}
        shares.update({name: ("no", "default") for name in self.extra_shares})
        text = _GLOBAL.format(port=self.port, root=self.root, signing=self.signing,
                              max_io=self.max_io)
        for name, (read_only, encrypt) in shares.items():
            path = self.share_path(name)
            path.mkdir(parents=True, exist_ok=True)
            text += _SHARE.format(name=name, path=path, read_only=read_only,
                                  user=self.username, encrypt=encrypt)
        self.config.write_text(text)
        secret = f"{self.password}\n{self.password}\n".encode()
        done = subprocess.run(
            [SMBPASSWD, "-c", str(self.config), "-s", "-a", self.username],
            input=secret, capture_output=True, timeout=30, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"smbpasswd failed: {done.stderr.decode(errors='replace')}")

    def start(self) -> None:
        """Start smbd (writing the configuration the first time) and wait for its port."""
        if not self._configured:  # a directory used before may hold another port's config
            self.write_config()
            self._configured = True
        log = (self.root / "log" / "smbd.out").open("ab")
        self._process = subprocess.Popen(
            [SMBD, "--foreground", "--no-process-group", "--debug-stdout",
             f"--configfile={self.config}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._wait_for_port()

    def kill(self) -> None:
        """Kill smbd and every process it forked for a client, at once (SIGKILL)."""
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self._process = None
        self._wait_for_port_closed()

    def stop(self) -> None:
        """Stop smbd and its children (SIGTERM, then SIGKILL after a grace period)."""
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        # Children serving clients may outlive the parent: the whole session goes.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _wait_for_port(self) -> None:
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"smbd exited with {self._process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 0.5):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"smbd did not listen on port {self.port} within "
                           f"{_STARTUP_SECONDS:g} s:\n{self.log_tail()}")

    def _wait_for_port_closed(self) -> None:
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), 0.5):
                    pass
            except OSError:
                return
            time.sleep(0.05)

    def __enter__(self) -> SambaServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def running_samba(root: Path, **settings: object) -> Iterator[SambaServer]:
    """Start a :class:`SambaServer` under ``root`` (keywords as its fields); stop it on exit."""
    server = SambaServer(Path(root), **settings)  # type: ignore[arg-type]
    with server:
        yield server


__all__ = [
    "ENCRYPTED_SHARE",
    "READ_ONLY_SHARE",
    "SHARE",
    "SambaServer",
    "running_samba",
    "samba_available",
]
