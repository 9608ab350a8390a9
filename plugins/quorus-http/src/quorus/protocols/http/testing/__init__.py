"""Real HTTP servers on loopback for tests of the HTTP protocol and of Quorus systems.

- :mod:`~quorus.protocols.http.testing.nginx`: a private nginx (WebDAV, basic auth, HTTP and
  HTTPS with a test CA) whose files live in one temporary directory.
- :mod:`~quorus.protocols.http.testing.scripted`: a small threaded HTTP/1.1 server that
  answers as a test scripts it (faults, ranges, changing files, credentials checks).

Both need the ``test`` extra (``pip install 'quorus-http[test]'``); nginx needs Debian's
``nginx-light`` (and ``libnginx-mod-http-dav-ext`` for PROPFIND).
"""

from quorus.protocols.http.testing.nginx import NginxServer, nginx_available, running_nginx
from quorus.protocols.http.testing.scripted import (
    Handler,
    ScriptedServer,
    Version,
    scripted_server,
    send_file,
    wait_until,
)

__all__ = [
    "Handler",
    "NginxServer",
    "ScriptedServer",
    "Version",
    "nginx_available",
    "running_nginx",
    "scripted_server",
    "send_file",
    "wait_until",
]
