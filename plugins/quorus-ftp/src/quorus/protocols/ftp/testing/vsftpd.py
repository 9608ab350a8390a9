"""A private vsftpd on loopback, for tests and benchmarks of the FTP protocol.

:class:`VsftpdServer` writes a configuration of its own into a given directory, creates a
throwaway system account for password logins (vsftpd authenticates local users through PAM,
so the account must be real; it is removed again on exit), optionally makes a TLS certificate
signed by a private CA, and runs ``vsftpd`` in the foreground on a free port of 127.0.0.1.
Nothing of the machine's own FTP service is read or touched.

Layout below ``directory``::

    root/          the chroot every login sees as "/" (owned by root, not writable: vsftpd
                   refuses a writable chroot)
    root/files/    owned by the test account: where tests read and write
    empty/         vsftpd's secure_chroot_dir
    tls/           server.pem, server.key, ca.pem (with ``tls=True``)
    vsftpd.conf, vsftpd.log

Starting, killing and restarting the server on the same port (:meth:`kill`, :meth:`start`)
is how tests cut a transfer in the middle. Running it needs root (the account, the chroot).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from quorus.core.testing import free_port

VSFTPD = shutil.which("vsftpd") or "/usr/sbin/vsftpd"
HOST = "127.0.0.1"
_STARTUP_SECONDS = 10.0

_BASE_CONFIG = """\
listen=YES
listen_ipv6=NO
listen_address={host}
listen_port={port}
background=NO
seccomp_sandbox=NO
anonymous_enable={anonymous}
no_anon_password=YES
anon_root={root}
anon_upload_enable=NO
anon_mkdir_write_enable=NO
local_enable=YES
pam_service_name=vsftpd
userlist_enable=NO
write_enable=YES
local_umask=022
chroot_local_user=YES
local_root={root}
pasv_enable=YES
pasv_address={host}
connect_from_port_20=NO
secure_chroot_dir={empty}
xferlog_enable=NO
dirmessage_enable=NO
use_localtime=NO
vsftpd_log_file={log}
local_max_rate={max_rate}
anon_max_rate={max_rate}
"""

_TLS_CONFIG = """\
ssl_enable=YES
rsa_cert_file={cert}
rsa_private_key_file={key}
allow_anon_ssl=YES
force_local_logins_ssl=YES
force_local_data_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
require_ssl_reuse=NO
ssl_ciphers=HIGH
"""


def vsftpd_available() -> str | None:
    """Why a :class:`VsftpdServer` cannot run here, or ``None`` when it can."""
    if not os.access(VSFTPD, os.X_OK):
        return "vsftpd is not installed (scripts/install-system-deps.sh installs it)"
    if os.geteuid() != 0:
        return "vsftpd tests need root (a throwaway system account and a chroot)"
    if shutil.which("useradd") is None or shutil.which("chpasswd") is None:
        return "useradd/chpasswd are missing (Debian: passwd)"
    return None


class VsftpdServer:
    """A vsftpd with its configuration, account and files under ``directory``.

    ``tls`` turns on explicit FTPS (AUTH TLS) with a certificate for 127.0.0.1 signed by a
    private CA (:attr:`ca_bundle`); logins and data must then be protected. ``anonymous``
    also lets ``anonymous`` log in (read-only). ``max_rate`` limits each session's data rate
    in bytes per second (0: no limit).
    """

    host = HOST

    def __init__(
        self,
        directory: Path,
        *,
        tls: bool = False,
        anonymous: bool = False,
        max_rate: int = 0,
    ) -> None:
        self.directory = Path(directory)
        self.tls = tls
        self.anonymous = anonymous
        self.max_rate = max_rate
        self.port = free_port(HOST)
        self.username = f"qftp{secrets.token_hex(4)}"
        self.password = secrets.token_urlsafe(18)
        self._process: subprocess.Popen[bytes] | None = None
        self._account = False
        self._log: int | None = None

    # --- what tests and benchmarks use -------------------------------------------------

    @property
    def root(self) -> Path:
        """The directory the server shows as ``/`` (read-only for the account)."""
        return self.directory / "root"

    @property
    def files(self) -> Path:
        """``/files`` on the server: the account's writable directory."""
        return self.root / "files"

    @property
    def ca_bundle(self) -> Path:
        """The PEM of the CA that signed the server's certificate (``tls=True``)."""
        return self.directory / "tls" / "ca.pem"

    @property
    def scheme(self) -> str:
        return "ftps" if self.tls else "ftp"

    def url(self, path: str = "/files/") -> str:
        """A URI for ``path`` on this server, without credentials."""
        return f"{self.scheme}://{HOST}:{self.port}{path}"

    def options(self, **extra: object) -> dict[str, object]:
        """Protocol options that log in as the server's account (and trust its CA)."""
        options: dict[str, object] = {"username": self.username, "password": self.password}
        if self.tls:
            options["ca_bundle"] = str(self.ca_bundle)
        return {**options, **extra}

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.username).pw_uid

    # --- life cycle ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self._prepare()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start vsftpd (again, after :meth:`kill`) on the same port."""
        if self._process is not None and self._process.poll() is None:
            return
        log = self.directory / "vsftpd.out"
        with log.open("ab") as out:
            # A session group of its own: vsftpd forks a process per connection, and
            # kill() must take those down too, as a crash of the server host would.
            self._process = subprocess.Popen(
                [VSFTPD, str(self.directory / "vsftpd.conf")],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait_for_port(log)

    def kill(self) -> None:
        """Kill the server and every session it runs, at once (SIGKILL)."""
        process = self._process
        if process is None:
            return
        # vsftpd's per-connection processes make themselves session leaders, so a signal
        # to the listener's process group misses them: kill the whole tree by parentage.
        for pid in [process.pid, *_descendants(process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=10)
        self._process = None

    def close(self) -> None:
        """Stop the server and remove the account (files stay for inspection)."""
        self.kill()
        if self._account:
            subprocess.run(["userdel", self.username], check=False, capture_output=True)
            self._account = False

    # --- set-up -------------------------------------------------------------------------

    def _prepare(self) -> None:
        reason = vsftpd_available()
        if reason is not None:
            raise RuntimeError(reason)
        self.directory.mkdir(parents=True, exist_ok=True)
        _ensure_traversable(self.directory)
        for sub in ("root", "empty"):
            (self.directory / sub).mkdir(exist_ok=True)
            os.chmod(self.directory / sub, 0o755)
        subprocess.run(
            ["useradd", "--no-create-home", "--home-dir", str(self.root),
             "--shell", "/bin/bash", "--user-group", self.username],
            check=True, capture_output=True,
        )
        self._account = True
        subprocess.run(
            ["chpasswd"], input=f"{self.username}:{self.password}\n".encode(),
            check=True, capture_output=True,
        )
        self.files.mkdir(exist_ok=True)
        os.chown(self.files, self.uid, self.uid)
        config = _BASE_CONFIG.format(
            host=HOST,
            port=self.port,
            anonymous="YES" if self.anonymous else "NO",
            root=self.root,
            empty=self.directory / "empty",
            log=self.directory / "vsftpd.log",
            max_rate=self.max_rate,
        )
        if self.tls:
            config += _TLS_CONFIG.format(**self._make_certificate())
        (self.directory / "vsftpd.conf").write_text(config)
        os.chmod(self.directory / "vsftpd.conf", 0o600)  # vsftpd insists on its owner

    def _make_certificate(self) -> dict[str, Path]:
        import trustme  # the test extra; imported here so the module loads without it

        tls = self.directory / "tls"
        tls.mkdir(exist_ok=True)
        ca = trustme.CA()
        issued = ca.issue_cert(HOST, "localhost")
        key, cert = tls / "server.key", tls / "server.pem"
        issued.private_key_pem.write_to_path(str(key))
        issued.cert_chain_pems[0].write_to_path(str(cert))
        os.chmod(key, 0o600)
        ca.cert_pem.write_to_path(str(self.ca_bundle))
        return {"cert": cert, "key": key}

    def _wait_for_port(self, log: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                output = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"vsftpd exited with {self._process.returncode}: {output}")
            with socket.socket() as sock:
                if sock.connect_ex((HOST, self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"vsftpd did not listen on {HOST}:{self.port} in {_STARTUP_SECONDS} s")


def _descendants(root: int) -> list[int]:
    """The processes below ``root``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _ensure_traversable(directory: Path) -> None:
    """vsftpd enters the chroot as the account: every parent must be searchable by others."""
    for parent in [directory.resolve(), *directory.resolve().parents]:
        if not os.stat(parent).st_mode & 0o001:
            raise RuntimeError(
                f"{parent} is not searchable by other users, so the FTP account cannot reach "
                f"{directory}; put the server's directory somewhere like /tmp"
            )


__all__ = ["HOST", "VSFTPD", "VsftpdServer", "vsftpd_available"]
