"""Fixtures of the SFTP plugin's tests: asyncio only (asyncssh), and a private OpenSSH sshd."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from quorus.core.testing.fixtures import missing_server
from quorus.protocols.sftp.testing import OpenSshServer, SystemUser, sshd_available


@pytest.fixture
def anyio_backend() -> str:
    """asyncssh runs on asyncio only, so the plugin is tested under asyncio only."""
    return "asyncio"


@pytest.fixture(scope="session")
def system_user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemUser]:
    """An unprivileged account with a password, for password and permission tests."""
    reason = sshd_available()
    if reason is not None:
        missing_server(reason)
    home = tmp_path_factory.mktemp("home")
    name = f"qsftp{uuid.uuid4().hex[:8]}"
    with SystemUser(name, f"pw-{uuid.uuid4().hex}", home) as user:
        yield user


@pytest.fixture(scope="session")
def sshd(system_user: SystemUser) -> Iterator[OpenSshServer]:
    """One sshd for the session (key auth for root, password auth for ``system_user``);
    each test works in a directory of its own below its served root.

    Its directory is not below pytest's temporary root, which only root may enter: the
    unprivileged user must reach the served files."""
    root = Path(tempfile.mkdtemp(prefix="quorus-sftp-test-"))
    try:
        root.chmod(0o755)
        with OpenSshServer(root, password_auth=True) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def remote_dir(sshd: OpenSshServer, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh, empty directory below the server's files (its path is also its URL path)."""
    label = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")
    directory = sshd.files / f"{label}-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    directory.chmod(0o777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
