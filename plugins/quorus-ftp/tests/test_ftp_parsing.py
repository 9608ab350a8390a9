"""Replies parsed without a server: LIST lines, MDTM stamps, reply codes to errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from quorus.core.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
)
from quorus.core.uri import parse_location
from quorus.protocols.ftp.errors import for_reply
from quorus.protocols.ftp.listing import parse_list_line
from quorus.protocols.ftp.protocol import parse_mdtm

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_list_line_of_a_file_with_spaces() -> None:
    entry = parse_list_line("-rw-r--r--    1 1001     1001         5000 Feb 26 20:13 a b.bin", now=NOW)
    assert entry is not None
    assert (entry.name, entry.size, entry.is_dir) == ("a b.bin", 5000, False)
    assert entry.mtime == datetime(2026, 2, 26, 20, 13, tzinfo=UTC).timestamp()
    assert entry.mode is not None and entry.mode & 0o777 == 0o644


def test_list_line_recent_date_in_the_future_is_last_year() -> None:
    entry = parse_list_line("drwxr-xr-x 2 0 0 4096 Dec 24 10:00 old", now=NOW)
    assert entry is not None and entry.is_dir
    assert entry.mtime == datetime(2025, 12, 24, 10, 0, tzinfo=UTC).timestamp()


def test_list_line_with_a_year_and_a_symlink() -> None:
    entry = parse_list_line("lrwxrwxrwx 1 0 0 7 Jan  5  2020 link -> target", now=NOW)
    assert entry is not None
    assert entry.name == "link"
    assert entry.mtime == datetime(2020, 1, 5, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("line", ["total 12", "", "garbage line"])
def test_other_lines_are_skipped(line: str) -> None:
    assert parse_list_line(line) is None


def test_mdtm() -> None:
    assert parse_mdtm("20261126201309") == datetime(2026, 11, 26, 20, 13, 9, tzinfo=UTC).timestamp()
    assert parse_mdtm("20261126201309.250") == pytest.approx(
        datetime(2026, 11, 26, 20, 13, 9, tzinfo=UTC).timestamp() + 0.25)
    assert parse_mdtm("not a time") is None


LOCATION = parse_location("ftp://user:hunter2@h/files/x.bin")


@pytest.mark.parametrize(
    ("code", "text", "exists", "kind", "retryable"),
    [
        ("530", "Login incorrect.", None, AuthenticationError, False),
        ("421", "Too many connections.", None, TransientError, True),
        ("426", "Failure writing network stream.", None, TransientError, True),
        ("451", "Failure writing to local file.", None, None, False),
        ("452", "Insufficient storage.", None, None, False),
        ("550", "Failed to open file.", False, NotFoundError, False),
        ("550", "Failed to open file.", True, PermissionDeniedError, False),
        ("553", "Could not create file.", True, PermissionDeniedError, False),
    ],
)
def test_reply_codes(
    code: str, text: str, exists: bool | None, kind: type[Exception] | None, retryable: bool
) -> None:
    error = for_reply(code, text, LOCATION, "read", exists=exists)
    if kind is not None:
        assert type(error) is kind
    assert error.retryable is retryable
    assert "hunter2" not in str(error)
    assert code in str(error)
