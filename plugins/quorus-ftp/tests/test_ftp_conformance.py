"""The FTP protocol passes Quorus's protocol conformance kit against a real vsftpd, over
plain FTP and over explicit FTPS (certificate verified against the test CA, data protected),
both with a password account so that wrong credentials are checked too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quorus.core.testing import ConformanceTarget, ProtocolConformance
from quorus.core.uri import Location
from quorus.protocols.ftp import FtpProtocol
from quorus.protocols.ftp.testing import VsftpdServer


class TestFtpConformance(ProtocolConformance):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def conformance_target(
        self, vsftpd: VsftpdServer, ftp_dir: tuple[Path, Location]
    ) -> AsyncIterator[ConformanceTarget]:
        async with (
            FtpProtocol(vsftpd.options()) as good,
            FtpProtocol(vsftpd.options(password="wrong")) as bad,
        ):
            yield ConformanceTarget(good, ftp_dir[1], bad_credentials=bad)


class TestFtpsConformance(ProtocolConformance):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def conformance_target(
        self, vsftpd_tls: VsftpdServer, ftps_dir: tuple[Path, Location]
    ) -> AsyncIterator[ConformanceTarget]:
        async with (
            FtpProtocol(vsftpd_tls.options()) as good,
            FtpProtocol(vsftpd_tls.options(password="wrong")) as bad,
        ):
            yield ConformanceTarget(good, ftps_dir[1], bad_credentials=bad)
