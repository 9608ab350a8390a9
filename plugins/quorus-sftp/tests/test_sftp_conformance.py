"""The SFTP protocol passes Quorus's protocol conformance kit against a real OpenSSH sshd.

Two logins: root with a private key (bad credentials: another key), and an unprivileged
user with a password (bad credentials: a wrong password).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from quorus.core.testing import ConformanceTarget, ProtocolConformance
from quorus.core.uri import parse_location
from quorus.protocols.sftp import SftpProtocol
from quorus.protocols.sftp.testing import OpenSshServer, SystemUser


class TestKeyAuthConformance(ProtocolConformance):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def conformance_target(
        self, sshd: OpenSshServer, remote_dir: Path, tmp_path: Path
    ) -> AsyncIterator[ConformanceTarget]:
        stranger = tmp_path / "stranger_ed25519"
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
        async with (
            SftpProtocol(sshd.options()) as good,
            SftpProtocol(sshd.options(private_key=str(stranger))) as bad,
        ):
            yield ConformanceTarget(good, parse_location(sshd.url(str(remote_dir))),
                                    bad_credentials=bad)


class TestPasswordConformance(ProtocolConformance):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def conformance_target(
        self, sshd: OpenSshServer, system_user: SystemUser, remote_dir: Path
    ) -> AsyncIterator[ConformanceTarget]:
        options = {"known_hosts": str(sshd.known_hosts), "agent": False,
                   "username": system_user.name}
        async with (
            SftpProtocol({**options, "password": system_user.password}) as good,
            SftpProtocol({**options, "password": "not-" + system_user.password}) as bad,
        ):
            base = parse_location(sshd.url(str(remote_dir), username=system_user.name))
            yield ConformanceTarget(good, base, bad_credentials=bad)
