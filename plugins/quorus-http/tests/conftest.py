"""Fixtures of the HTTP plugin's tests: both anyio backends, and a private nginx."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from quorus.core.testing.fixtures import anyio_backend, missing_server  # noqa: F401
from quorus.protocols.http.testing.nginx import NginxServer, nginx_available, running_nginx


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    """One nginx for the session; each test works in a directory of its own below it."""
    reason = nginx_available()
    if reason is not None:
        missing_server(reason)
    with running_nginx(tmp_path_factory.mktemp("nginx")) as server:
        yield server


@pytest.fixture
def dav_dir(nginx: NginxServer, request: pytest.FixtureRequest) -> tuple[Path, str]:
    """A fresh, empty directory under the server's /dav/: (its path on disk, its URL path)."""
    label = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")
    name = f"{label}-{uuid.uuid4().hex[:8]}"
    directory = nginx.www / "dav" / name
    directory.mkdir()
    return directory, f"/dav/{name}"
