"""Protocol option checks shared by every plugin: the option is named, a secret never is."""

from __future__ import annotations

import pytest
from quorus.core.errors import ConfigurationError
from quorus.core.options import check_known, option_flag, option_number, option_secret


def test_unknown_options_are_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown ftp option\(s\) 'pasword'; known options: password, verify"):
        check_known("ftp", {"pasword": "x"}, {"password", "verify"})
    check_known("ftp", {"password": "x"}, {"password", "verify"})


def test_secrets_resolve_references_and_digits_stay_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("Q_PW", "s3cret")
    assert option_secret("sftp", {"password": "env:Q_PW"}, "password").reveal() == "s3cret"  # type: ignore[union-attr]
    # The command line makes 1234 an int; a password of digits is still a password.
    assert option_secret("sftp", {"password": 1234}, "password").reveal() == "1234"  # type: ignore[union-attr]
    assert option_secret("sftp", {}, "password") is None
    with pytest.raises(ConfigurationError, match="sftp option password: expected text") as info:
        option_secret("sftp", {"password": ["not", "text"]}, "password")
    assert "not" not in str(info.value)


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("yes", True), ("0", False), ("off", False)])
def test_flags(value: object, expected: bool) -> None:
    assert option_flag("smb", {"encrypt": value}, "encrypt", not expected) is expected


def test_bad_flags_and_numbers_name_the_option_and_the_limit() -> None:
    with pytest.raises(ConfigurationError, match=r"smb option encrypt='maybe': expected true or false"):
        option_flag("smb", {"encrypt": "maybe"}, "encrypt", False)
    with pytest.raises(ConfigurationError, match="expected a number"):
        option_number("http", {"timeout": "soon"}, "timeout", 30)
    with pytest.raises(ConfigurationError, match="must be at least 1 and at most 256"):
        option_number("smb", {"max_requests": 500}, "max_requests", 16, minimum=1, maximum=256)
    assert option_number("http", {}, "timeout", 30) == 30


def test_a_credential_given_as_a_number_is_its_text_and_other_values_are_refused() -> None:
    # Plugins that resolve credentials themselves get the same rules as option_secret.
    from quorus.core.secrets import resolve_secret

    assert resolve_secret(12345).reveal() == "12345"  # type: ignore[union-attr]
    assert resolve_secret("env-less text").reveal() == "env-less text"  # type: ignore[union-attr]
    for value in (True, {"nested": "x"}, ["x"]):
        with pytest.raises(ConfigurationError, match="a credential must be text, env:NAME or "
                           "file:PATH, not") as info:
            resolve_secret(value)  # type: ignore[arg-type]
        assert "nested" not in str(info.value)


@pytest.mark.anyio
async def test_the_memory_protocol_takes_a_token_of_digits() -> None:
    from quorus.core.errors import AuthenticationError
    from quorus.core.protocols.memory import MemoryProtocol, memory_store
    from quorus.core.uri import parse_location

    memory_store("digits", required_token="4242").put("/a.bin", b"abc")
    location = parse_location("memory://digits/a.bin")
    assert (await MemoryProtocol({"token": 4242}).stat(location)).size == 3
    with pytest.raises(AuthenticationError, match="the token given was rejected"):
        await MemoryProtocol({"token": 4243}).stat(location)
