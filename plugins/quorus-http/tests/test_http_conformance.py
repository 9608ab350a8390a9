"""The HTTP protocol passes Quorus's protocol conformance kit against a real nginx.

Two configurations: WebDAV over HTTP (rename, delete, listing claimed, so the kit checks
them) and plain HTTPS with a private CA (PUT and GET only, so the kit checks that an
aborted upload leaves nothing behind). Both use basic auth, so bad credentials are checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quorus.core.testing import ConformanceTarget, ProtocolConformance
from quorus.core.testing.fixtures import missing_server
from quorus.core.uri import parse_location
from quorus.protocols.http import HttpProtocol
from quorus.protocols.http.testing.nginx import PASSWORD, USERNAME, NginxServer


class TestWebDavConformance(ProtocolConformance):
    @pytest.fixture
    async def conformance_target(
        self, nginx: NginxServer, dav_dir: tuple[Path, str]
    ) -> AsyncIterator[ConformanceTarget]:
        if not nginx.propfind:
            missing_server("nginx lacks the dav-ext module (Debian: libnginx-mod-http-dav-ext)")
        options = {"username": USERNAME, "password": PASSWORD, "webdav": True}
        async with (
            HttpProtocol(options) as good,
            HttpProtocol({**options, "password": "wrong"}) as bad,
        ):
            base = parse_location(nginx.url(dav_dir[1]))
            yield ConformanceTarget(good, base, bad_credentials=bad)


class TestHttpsConformance(ProtocolConformance):
    @pytest.fixture
    async def conformance_target(
        self, nginx: NginxServer, dav_dir: tuple[Path, str]
    ) -> AsyncIterator[ConformanceTarget]:
        options = {"username": USERNAME, "password": PASSWORD, "ca_bundle": str(nginx.ca_bundle)}
        async with (
            HttpProtocol(options) as good,
            HttpProtocol({**options, "password": "wrong"}) as bad,
        ):
            base = parse_location(nginx.url(dav_dir[1], tls=True))
            yield ConformanceTarget(good, base, bad_credentials=bad)
