"""A private OpenSSH ``sshd`` on loopback, for tests and benchmarks of the SFTP protocol.

Everything the server needs (its configuration, host key, authorized keys, known_hosts for
the client, log and the served directory) lives in one directory given by the caller; sshd
runs in the foreground on a free port of 127.0.0.1 and stops when the context ends::

    with OpenSshServer(Path("/tmp/bench/ssh")) as server:
        SftpProtocol(server.options())  # key auth as root, host key pinned
        server.url("/tmp/bench/ssh/files/big.bin")

Needs root (sshd switches users), Debian's ``openssh-server`` and ``/run/sshd``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import asyncssh
from quorus.core.testing import free_port

SSHD = "/usr/sbin/sshd"  # sshd re-executes itself and insists on an absolute path
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
PRIVSEP_DIR = Path("/run/sshd")
_STARTUP_SECONDS = 10.0

_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {root}/host_ed25519
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication {password_auth}
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
MaxStartups 64
MaxSessions 64
LogLevel VERBOSE
Subsystem sftp {sftp_server}
"""


def sshd_available() -> str | None:
    """Why a private sshd cannot run here, or ``None`` when it can."""
    if not os.access(SSHD, os.X_OK):
        return "OpenSSH sshd is not installed (scripts/install-system-deps.sh: openssh-server)"
    if os.geteuid() != 0:
        return "a private sshd needs root (it switches to the logged-in user)"
    return None


class OpenSshServer:
    """A running sshd serving ``root/files`` (or ``files`` when given) over SFTP.

    - ``host``, ``port``: where it listens; ``username``: ``root``, authenticated by
      ``client_key`` (an ed25519 key without passphrase, in ``authorized_keys``).
    - ``known_hosts``: a known_hosts file that names this server's host key.
    - ``files``: the served directory (an absolute path on this machine, which is also its
      path in ``sftp://`` URLs).
    - ``password_auth``: turn on password authentication (for users made with
      :class:`SystemUser`).

    :meth:`kill` ends the server and every session it forked, as a crash would;
    :meth:`start` brings it back on the same port with the same host key.
    """

    host = "127.0.0.1"
    username = "root"

    def __init__(
        self, root: Path, *, files: Path | None = None, password_auth: bool = False
    ) -> None:
        self.root = root
        self.files = files if files is not None else root / "files"
        self.password_auth = password_auth
        self.port = free_port()
        self.client_key = root / "client_ed25519"
        self.known_hosts = root / "known_hosts"
        self.log = root / "sshd.log"
        self._process: subprocess.Popen[bytes] | None = None

    # --- set-up ----------------------------------------------------------------------

    def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.files.mkdir(parents=True, exist_ok=True)
        host_key_path = self.root / "host_ed25519"
        if not host_key_path.exists():
            host_key = asyncssh.generate_private_key("ssh-ed25519", comment="quorus-test-host")
            host_key.write_private_key(str(host_key_path))
            host_key_path.chmod(0o600)
            entry = f"[{self.host}]:{self.port} {host_key.export_public_key().decode().strip()}"
            self.known_hosts.write_text(entry + "\n")
        if not self.client_key.exists():
            client_key = asyncssh.generate_private_key("ssh-ed25519", comment="quorus-test-client")
            client_key.write_private_key(str(self.client_key))
            self.client_key.chmod(0o600)
            self.authorize(client_key)
        (self.root / "sshd_config").write_text(_CONFIG.format(
            port=self.port,
            root=self.root,
            password_auth="yes" if self.password_auth else "no",
            sftp_server=SFTP_SERVER if os.access(SFTP_SERVER, os.X_OK) else "internal-sftp",
        ))
        if not PRIVSEP_DIR.is_dir():
            # Left in place afterwards: another sshd on this machine may need it by then.
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True)

    def authorize(self, key: asyncssh.SSHKey) -> None:
        """Let ``key`` log in (as any user: the authorized_keys file is shared)."""
        with (self.root / "authorized_keys").open("a") as keys:
            keys.write(key.export_public_key().decode().strip() + "\n")

    # --- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start sshd (again) and wait until it accepts connections."""
        if self._process is not None and self._process.poll() is None:
            return
        self._prepare()
        config = self.root / "sshd_config"
        checked = subprocess.run(
            [SSHD, "-t", "-f", str(config)], capture_output=True, text=True, check=False
        )
        if checked.returncode != 0:
            raise RuntimeError(f"sshd rejects its configuration: {checked.stderr.strip()}")
        self._process = subprocess.Popen(
            [SSHD, "-D", "-f", str(config), "-E", str(self.log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_for_port()

    def kill(self) -> None:
        """End sshd and all its sessions at once (SIGKILL), like a crashed server."""
        process, self._process = self._process, None
        if process is None:
            return
        pids = [process.pid, *_descendants(process.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        """Stop sshd and its sessions."""
        self.kill()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what clients need -----------------------------------------------------------

    def url(self, path: str, *, username: str | None = None) -> str:
        """``sftp://user@127.0.0.1:PORT/path`` (``path`` absolute on the server)."""
        user = username or self.username
        return f"sftp://{user}@{self.host}:{self.port}{path}"

    def options(self, **extra: Any) -> dict[str, Any]:
        """Options of :class:`~quorus.protocols.sftp.SftpProtocol` that log in as root with
        ``client_key`` and trust exactly this server's host key."""
        return {
            "username": self.username,
            "private_key": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "agent": False,
            **extra,
        }

    def _wait_for_port(self) -> None:
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise RuntimeError(f"sshd exited at start: {log}")
            with socket.socket() as sock:
                if sock.connect_ex((self.host, self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on {self.host}:{self.port} "
                           f"within {_STARTUP_SECONDS} s")


class SystemUser:
    """A throwaway local account with a password, removed again on exit (needs root).

    sshd authenticates passwords against the system's user database, and only an
    unprivileged user meets permission checks, so tests of both need a real account.
    """

    def __init__(self, name: str, password: str, home: Path) -> None:
        self.name = name
        self.password = password
        self.home = home

    def __enter__(self) -> Self:
        self.home.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["useradd", "--no-create-home", "--home-dir", str(self.home), "--shell", "/bin/sh",
             "--user-group", self.name],
            check=True, capture_output=True,
        )
        try:
            subprocess.run(["chpasswd"], input=f"{self.name}:{self.password}\n".encode(),
                           check=True, capture_output=True)
            shutil.chown(self.home, self.name, self.name)
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._remove()

    def _remove(self) -> None:
        # Sessions of the user may still be closing; userdel refuses while they run.
        for _ in range(50):
            done = subprocess.run(["userdel", self.name], capture_output=True, check=False)
            if done.returncode in (0, 6):  # 6: no such user
                return
            time.sleep(0.1)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (sshd's forked sessions and their sftp-servers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (2nd field) may contain spaces; the parent pid follows ") S ".
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


__all__ = ["OpenSshServer", "SystemUser", "sshd_available"]
