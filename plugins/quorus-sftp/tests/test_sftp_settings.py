"""Options, paths and the asyncio-only rule, without a server."""

from __future__ import annotations

import pytest
import trio
from quorus.core.errors import ConfigurationError
from quorus.core.uri import parse_location
from quorus.protocols.sftp import SftpProtocol
from quorus.protocols.sftp.protocol import remote_path
from quorus.protocols.sftp.settings import SftpSettings


@pytest.mark.parametrize(("url", "path"), [
    ("sftp://h/srv/data.bin", "/srv/data.bin"),
    ("sftp://h/~/inbox/a.csv", "inbox/a.csv"),
    ("sftp://h/~", "."),
    ("sftp://h", "/"),
])
def test_remote_paths(url: str, path: str) -> None:
    assert remote_path(parse_location(url)) == path


def test_options_are_checked() -> None:
    settings = SftpSettings.from_options({"max_requests": "4", "ciphers": "aes256-ctr, aes128-ctr",
                                          "password": 1234, "agent": "off"})
    assert settings.max_requests == 4
    assert settings.ciphers == ("aes256-ctr", "aes128-ctr")
    assert settings.password is not None and settings.password.reveal() == "1234"
    assert settings.agent is False
    for bad in ({"max_requests": 0}, {"verify_host_key": "maybe"}, {"block_size": 10},
                {"connect_timeout": "soon"}):
        with pytest.raises(ConfigurationError, match=next(iter(bad))):
            SftpSettings.from_options(bad)


def test_connect_arguments_pin_what_the_options_say() -> None:
    settings = SftpSettings.from_options({"known_hosts": "/etc/kh", "agent": False})
    arguments = settings.connect_arguments("alice", None, None)
    assert arguments["known_hosts"] == "/etc/kh"
    assert arguments["agent_path"] is None
    assert arguments["password_auth"] is False
    assert arguments["config"] is None
    assert arguments["encryption_algs"][0] == "aes128-gcm@openssh.com"


def test_trio_is_refused_with_a_clear_error() -> None:
    async def stat() -> None:
        async with SftpProtocol({"verify_host_key": False}) as protocol:
            await protocol.stat(parse_location("sftp://127.0.0.1:9/x"))

    with pytest.raises(ConfigurationError, match="asyncio only"):
        trio.run(stat)


def test_pooled_padding_is_fresh_randomness_of_the_asked_size() -> None:
    import asyncssh.connection
    from quorus.protocols.sftp import padding

    padding.install()
    padding.install()
    pooled = vars(asyncssh.connection)["os"]
    pieces = [pooled.urandom(size) for size in (4, 255, 17) * 2000]
    assert [len(piece) for piece in pieces] == [4, 255, 17] * 2000
    longer = [piece for piece in pieces if len(piece) > 4]  # 4 bytes may repeat by chance
    assert len(set(longer)) == len(longer)
    assert len(pooled.urandom(4096)) == 4096
    assert pooled.getpid is __import__("os").getpid
