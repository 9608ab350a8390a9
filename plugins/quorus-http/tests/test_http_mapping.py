"""The pure parts: option checking, header parsing, status and failure mapping, multistatus."""

from __future__ import annotations

import email.utils
import ssl

import httpx
import pytest
from quorus.core.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    TransferError,
    TransientError,
)
from quorus.protocols.http import HttpProtocol
from quorus.protocols.http.errors import parse_retry_after, status_error, transport_error
from quorus.protocols.http.reading import ContentRange, parse_content_range, validator
from quorus.protocols.http.settings import HttpSettings
from quorus.protocols.http.webdav import children, parse_multistatus

URL = "https://alice:***@files.example/data.bin"


def response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("GET", "https://x/"))


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (404, NotFoundError, False),
        (410, NotFoundError, False),
        (401, AuthenticationError, False),
        (403, PermissionDeniedError, False),
        (408, TransientError, True),
        (429, TransientError, True),
        (500, TransientError, True),
        (502, TransientError, True),
        (503, TransientError, True),
        (400, TransferError, False),
        (409, TransferError, False),
    ],
)
def test_status_mapping(status: int, error: type[TransferError], retryable: bool) -> None:
    mapped = status_error(response(status), "read", URL)
    assert type(mapped) is error
    assert mapped.retryable is retryable
    assert URL in str(mapped)
    assert str(status) in str(mapped)


def test_redirect_status_names_the_target() -> None:
    mapped = status_error(response(307, {"Location": "https://other/x"}), "upload to", URL)
    assert not mapped.retryable
    assert "https://other/x" in str(mapped)


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_060, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(60)
    assert parse_retry_after(date, now=2_000_000) == 0
    mapped = status_error(response(503, {"Retry-After": "3"}), "read", URL)
    assert mapped.retry_after == 3.0
    assert "retry in 3 s" in str(mapped)


@pytest.mark.parametrize(
    ("exc", "error", "retryable", "words"),
    [
        (httpx.ConnectError("refused"), TransientError, True, "cannot connect"),
        (httpx.ConnectTimeout("slow"), TransientError, True, "connecting timed out"),
        (httpx.ReadTimeout("slow"), TransientError, True, "read timeout"),
        (httpx.ReadError("reset"), TransientError, True, "connection failed"),
        (httpx.RemoteProtocolError("cut"), TransientError, True, "broke off"),
        (httpx.TooManyRedirects("loop"), TransferError, False, "too many redirects"),
    ],
)
def test_transport_failure_mapping(
    exc: httpx.HTTPError, error: type[TransferError], retryable: bool, words: str
) -> None:
    mapped = transport_error(exc, "read", URL)
    assert type(mapped) is error
    assert mapped.retryable is retryable
    assert words in str(mapped)
    assert URL in str(mapped)


def test_certificate_failure_deep_in_the_chain_is_permanent() -> None:
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "self-signed certificate in certificate chain"
    middle = OSError("broken")
    middle.__cause__ = verify
    exc = httpx.ConnectError("handshake failed")
    exc.__cause__ = middle
    mapped = transport_error(exc, "read", URL)
    assert not mapped.retryable
    assert "could not be verified (self-signed certificate" in str(mapped)
    assert "ca_bundle" in str(mapped)


def test_content_range_forms() -> None:
    assert parse_content_range("bytes 0-99/1234") == ContentRange(0, 99, 1234)
    assert parse_content_range("bytes 5-9/*") == ContentRange(5, 9, None)
    assert parse_content_range("bytes */77") == ContentRange(None, None, 77)
    assert parse_content_range("items 1-2/3") is None
    assert parse_content_range(None) is None


def test_if_range_prefers_a_strong_etag() -> None:
    from quorus.core.protocol import FileInfo
    from quorus.core.uri import parse_location

    where = parse_location("http://h/f")
    assert validator(FileInfo(where, 1, etag='"abc"', mtime=0.0)) == '"abc"'
    assert validator(FileInfo(where, 1, etag='W/"abc"', mtime=0.0)) == (
        "Thu, 01 Jan 1970 00:00:00 GMT")
    assert validator(FileInfo(where, 1)) is None


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"bearer_tokn": "x"}, "unknown http option(s) 'bearer_tokn'"),
        ({"upload_method": "PATCH"}, "expected PUT or POST"),
        ({"verify": "maybe"}, "expected true or false"),
        ({"timeout": "soon"}, "expected a number"),
        ({"chunk_size": 0}, "must be at least 1"),
        ({"headers": ["X-A: b"]}, "expected a mapping"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle='/nonexistent/ca.pem' cannot be used"),
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        HttpProtocol(options).settings.client()
    assert words in str(excinfo.value)


def test_option_values_from_the_command_line_are_accepted() -> None:
    settings = HttpSettings.from_options(
        {"verify": "false", "timeout": "2.5", "max_redirects": 0, "upload_method": "post",
         "webdav": "yes", "chunk_size": 65536})
    assert (settings.verify, settings.timeout, settings.max_redirects) == (False, 2.5, 0)
    assert (settings.upload_method, settings.webdav, settings.chunk_size) == ("POST", True, 65536)


def test_capabilities_follow_the_webdav_option() -> None:
    from quorus.core.uri import parse_location

    where = parse_location("https://h/f")
    plain = HttpProtocol().capabilities(where)
    dav = HttpProtocol({"webdav": True, "chunk_size": 4096}).capabilities(where)
    assert plain.ranged_read and not plain.write_at_offset
    assert not (plain.rename or plain.delete or plain.listing)
    assert dav.rename and dav.delete and dav.listing and not dav.write_at_offset
    assert dav.chunk_size == 4096


MULTISTATUS = b"""<?xml version="1.0" encoding="utf-8" ?>
<D:multistatus xmlns:D="DAV:">
<D:response><D:href>/dav/dir/</D:href><D:propstat><D:prop>
  <D:resourcetype><D:collection/></D:resourcetype></D:prop>
  <D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<D:response><D:href>http://h/dav/dir/a%20b.txt</D:href>
  <D:propstat><D:prop><D:getcontentlength>5</D:getcontentlength>
  <D:getlastmodified>Thu, 26 Nov 2026 18:25:57 GMT</D:getlastmodified>
  <D:resourcetype/></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  <D:propstat><D:prop><D:getetag/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>
</D:response>
<D:response><D:href>/dav/dir/sub/</D:href><D:propstat><D:prop>
  <D:resourcetype><D:collection/></D:resourcetype></D:prop>
  <D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<D:response><D:href>/dav/dir/sub/deeper.txt</D:href><D:propstat><D:prop>
  <D:resourcetype/></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
</D:multistatus>"""


def test_multistatus_parsing() -> None:
    entries = parse_multistatus(MULTISTATUS, URL)
    inside = children(entries, "/dav/dir")
    assert [(e.path, e.is_dir, e.size) for e in inside] == [
        ("/dav/dir/a b.txt", False, 5),
        ("/dav/dir/sub", True, None),
    ]
    assert inside[0].mtime == email.utils.parsedate_to_datetime(
        "Thu, 26 Nov 2026 18:25:57 GMT").timestamp()
    assert inside[0].etag is None


@pytest.mark.parametrize("body", [b"not xml", b"<html/>"])
def test_multistatus_garbage_is_an_error(body: bytes) -> None:
    with pytest.raises(TransferError, match="PROPFIND answer"):
        parse_multistatus(body, URL)
