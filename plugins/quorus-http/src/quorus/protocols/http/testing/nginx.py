"""A private nginx for tests: WebDAV, basic auth, HTTP and HTTPS on loopback.

Everything nginx needs (configuration, pid, logs, temporary files, the document root, the
password file and the TLS certificate) lives in one temporary directory; nginx runs in the
foreground as a single process on free ports of 127.0.0.1 and stops when the context ends.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from quorus.core.testing import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
#: PROPFIND comes from this module (Debian: libnginx-mod-http-dav-ext); nginx's own dav
#: module does PUT, DELETE, MKCOL, COPY and MOVE only.
DAV_EXT_MODULE = Path("/usr/lib/nginx/modules/ngx_http_dav_ext_module.so")
USERNAME = "quorus"
PASSWORD = "n0t-the-real-one"
_STARTUP_SECONDS = 10.0

_CONFIG = """\
{load_module}
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {root}/logs/access.log;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    client_max_body_size 0;
    # Relative Location headers: the same redirect works on the HTTP and the HTTPS port.
    absolute_redirect off;
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {root}/tls/server.pem;
        ssl_certificate_key {root}/tls/server.key;
        root {root}/www;
        # Open to anyone: downloads for the CLI and throughput checks.
        location /public/ {{
            dav_methods PUT DELETE MKCOL COPY MOVE;
            create_full_put_path on;
        }}
        # WebDAV behind basic auth: the conformance kit and upload tests.
        location /dav/ {{
            auth_basic "quorus tests";
            auth_basic_user_file {root}/htpasswd;
            dav_methods PUT DELETE MKCOL COPY MOVE;
            {dav_ext}
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class NginxServer:
    """A running nginx: its ports, document root and the CA that signed its certificate."""

    root: Path
    http_port: int
    https_port: int
    ca_bundle: Path
    propfind: bool

    @property
    def www(self) -> Path:
        return self.root / "www"

    def url(self, path: str, *, tls: bool = False) -> str:
        if tls:
            return f"https://127.0.0.1:{self.https_port}{path}"
        return f"http://127.0.0.1:{self.http_port}{path}"


def nginx_available() -> str | None:
    """Why nginx cannot be used here, or ``None`` when it can."""
    if not os.access(NGINX, os.X_OK):
        return "nginx is not installed (scripts/install-system-deps.sh installs nginx-light)"
    return None


@contextlib.contextmanager
def running_nginx(root: Path) -> Iterator[NginxServer]:
    """Start nginx with everything under ``root``; stop it on exit."""
    import trustme  # the test extra; imported here so the module itself loads without it

    for sub in ("logs", "tmp", "tls", "www/dav", "www/public"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(root / "tls/server.key"))
    cert.cert_chain_pems[0].write_to_path(str(root / "tls/server.pem"))
    ca_bundle = root / "tls/ca.pem"
    ca.cert_pem.write_to_path(str(ca_bundle))
    digest = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
    (root / "htpasswd").write_text(f"{USERNAME}:{{SHA}}{digest}\n")

    propfind = DAV_EXT_MODULE.exists()
    http_port, https_port = free_port(), free_port()
    (root / "nginx.conf").write_text(_CONFIG.format(
        root=root,
        http_port=http_port,
        https_port=https_port,
        load_module=f"load_module {DAV_EXT_MODULE};" if propfind else "",
        dav_ext="dav_ext_methods PROPFIND OPTIONS;" if propfind else "",
    ))
    log = (root / "logs/stderr.log").open("wb")
    process = subprocess.Popen(
        [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "logs/error.log")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(process, http_port, root)
        yield NginxServer(root, http_port, https_port, ca_bundle, propfind)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful: finish open requests, then exit
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _wait_for_port(process: subprocess.Popen[bytes], port: int, root: Path) -> None:
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors = (root / "logs/error.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"nginx exited with {process.returncode}: {errors}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on 127.0.0.1:{port} within {_STARTUP_SECONDS} s")
