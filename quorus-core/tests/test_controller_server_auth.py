"""The ``token`` auth method: found through the ``quorus.auth`` entry point, accepting only
the configured token, and the token file a controller generates on first start."""

from __future__ import annotations

from pathlib import Path

import pytest
from quorus.core.auth import Principal, TokenAuth, ensure_token_file, load_authenticator
from quorus.core.errors import ConfigurationError
from quorus.core.plugins import AUTH, registry


def test_the_token_method_resolves_through_its_entry_point() -> None:
    factory = registry().load(AUTH, "token")
    assert factory == TokenAuth.from_options
    auth = load_authenticator("token", {"token": "s3cret", "principal": "ops"})
    assert auth.method == "token"
    assert auth.authenticate({"token": "s3cret"}) == Principal("ops", "token")


@pytest.mark.parametrize("credentials", [{}, {"token": ""}, {"token": "s3cre"},
                                         {"token": "s3cret "}, {"password": "s3cret"}])
def test_anything_but_the_token_proves_nothing(credentials: dict[str, str]) -> None:
    assert TokenAuth.from_options({"token": "s3cret"}).authenticate(credentials) is None


def test_a_token_reference_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUORUS_TEST_TOKEN", "from-env")
    assert TokenAuth.from_options({"token": "env:QUORUS_TEST_TOKEN"}).authenticate(
        {"token": "from-env"}) is not None
    with pytest.raises(ConfigurationError):
        TokenAuth.from_options({})
    with pytest.raises(ConfigurationError):
        TokenAuth.from_options({"token": ""})


def test_the_token_file_is_created_once_and_private(tmp_path: Path) -> None:
    path, created = ensure_token_file(tmp_path / "data")
    assert created
    assert path.stat().st_mode & 0o777 == 0o600
    token = path.read_text().strip()
    assert len(token) >= 32
    again, created_again = ensure_token_file(tmp_path / "data")
    assert (again, created_again) == (path, False)
    assert again.read_text().strip() == token
    path.write_text("")
    with pytest.raises(ConfigurationError, match="empty"):
        ensure_token_file(tmp_path / "data")
