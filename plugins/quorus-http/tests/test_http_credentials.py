"""Credentials reach the server and nothing else: not errors, logs, reprs or results."""

from __future__ import annotations

import base64
import json
import logging
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from quorus.core import RetryPolicy, TransferEngine, TransferRequest, TransferStatus
from quorus.core.errors import AuthenticationError, ConfigurationError
from quorus.core.uri import parse_location
from quorus.protocols.http import HttpProtocol
from quorus.protocols.http.testing.scripted import Handler, Version, scripted_server, send_file

pytestmark = pytest.mark.anyio

FILE = Version(b"guarded payload " * 4096, '"guarded"')
TOKEN = f"tok-{uuid.uuid4().hex}"
PASSWORD = f"pw-{uuid.uuid4().hex}"


def guarded(expected: str) -> Callable[[Handler], None]:
    """A server that serves FILE only to requests with ``Authorization: expected``."""

    def respond(handler: Handler) -> None:
        if handler.headers.get("Authorization") == expected:
            send_file(handler, FILE)
        else:
            handler.reply(401, headers={"WWW-Authenticate": 'Bearer realm="tests"'})

    return respond


@pytest.fixture
def token_reference(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    if request.param == "env":
        monkeypatch.setenv("QUORUS_TEST_TOKEN", TOKEN)
        return "env:QUORUS_TEST_TOKEN"
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return f"file:{path}"


def assert_hidden(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text


@pytest.mark.parametrize("token_reference", ["env", "file"], indirect=True)
async def test_bearer_token_reaches_the_server_only(
    token_reference: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    options = {"http": {"bearer_token": token_reference}}
    with scripted_server(guarded(f"Bearer {TOKEN}")) as server:
        async with TransferEngine(protocol_options=options) as engine:
            result = await engine.transfer(
                TransferRequest.create(server.url(), str(tmp_path / "out.bin")))
            protocol = engine.protocol(parse_location(server.url()))
            shown = [repr(protocol), str(protocol.options), repr(protocol.settings)]
        sent = {seen.headers.get("Authorization") for seen in server.seen}
    assert result.status is TransferStatus.COMPLETED, result.error
    assert sent == {f"Bearer {TOKEN}"}
    assert_hidden(TOKEN, json.dumps(result.as_dict()), caplog.text, *shown)
    assert any("HTTP Request" in record.getMessage() for record in caplog.records)


async def test_rejected_token_is_not_in_the_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with scripted_server(guarded("Bearer something-else")) as server:
        async with HttpProtocol({"bearer_token": TOKEN}) as protocol:
            with pytest.raises(AuthenticationError) as excinfo:
                await protocol.stat(parse_location(server.url()))
        options = {"http": {"bearer_token": TOKEN}}
        async with TransferEngine(protocol_options=options) as engine:
            result = await engine.transfer(TransferRequest.create(
                server.url(), str(tmp_path / "out.bin"), retry=RetryPolicy(max_attempts=2)))
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    error_text = "".join(traceback.format_exception(excinfo.value))
    assert server.url() in error_text
    assert_hidden(TOKEN, error_text, repr(excinfo.value), json.dumps(result.as_dict()),
                  caplog.text)


async def test_password_in_the_uri_is_basic_auth_and_redacted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    with scripted_server(guarded(f"Basic {basic}")) as server:
        source = f"http://alice:{PASSWORD}@127.0.0.1:{server.port}/file.bin"
        async with TransferEngine() as engine:
            result = await engine.transfer(TransferRequest.create(source, str(tmp_path / "o")))
    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.source == f"http://alice:***@127.0.0.1:{server.port}/file.bin"
    assert_hidden(PASSWORD, json.dumps(result.as_dict()), caplog.text)


async def test_username_and_password_options_from_references(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QUORUS_TEST_PASSWORD", PASSWORD)
    basic = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
    options = {"username": "bob", "password": "env:QUORUS_TEST_PASSWORD"}
    with scripted_server(guarded(f"Basic {basic}")) as server:
        async with HttpProtocol(options) as protocol:
            info = await protocol.stat(parse_location(server.url()))
            assert_hidden(PASSWORD, repr(protocol), str(protocol.options))
    assert info.size == len(FILE.data)


def test_missing_credential_reference_names_the_reference_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("QUORUS_TEST_ABSENT", raising=False)
    with pytest.raises(ConfigurationError, match="QUORUS_TEST_ABSENT"):
        HttpProtocol({"bearer_token": "env:QUORUS_TEST_ABSENT"})


async def test_header_values_may_be_references(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUORUS_TEST_API_KEY", TOKEN)

    def respond(handler: Handler) -> None:
        if handler.headers.get("X-Api-Key") == TOKEN:
            send_file(handler, FILE)
        else:
            handler.reply(403)

    with scripted_server(respond) as server:
        options = {"headers": {"X-Api-Key": "env:QUORUS_TEST_API_KEY"}}
        async with HttpProtocol(options) as protocol:
            assert (await protocol.stat(parse_location(server.url()))).size == len(FILE.data)
            assert_hidden(TOKEN, str(protocol.options))
