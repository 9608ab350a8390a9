"""Locations: URIs and local paths parse, and passwords never show."""

from __future__ import annotations

import os

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from quorus.core.errors import InvalidURIError
from quorus.core.uri import Location, parse_location


def test_local_path_becomes_absolute_file_location(tmp_path: object) -> None:
    location = parse_location("data/in.bin", cwd="/srv")
    assert location.scheme == "file"
    assert location.path == "/srv/data/in.bin"
    assert location.name == "in.bin"


def test_file_uri_is_normalised() -> None:
    assert parse_location("file:///a/b/../c.txt").path == "/a/c.txt"
    assert parse_location("file://localhost/x").path == "/x"


def test_http_uri_parts() -> None:
    location = parse_location("https://user:pa%40ss@Example.com:8443/dir/file%20name.bin?x=1")
    assert location.scheme == "https"
    assert location.host == "example.com"
    assert location.port == 8443
    assert location.path == "/dir/file name.bin"
    assert location.query == "x=1"
    assert location.username == "user"
    assert location.password == "pa@ss"
    assert "pa@ss" not in location.redacted()
    assert "pa%40ss" not in location.redacted()
    assert "***" in location.redacted()
    assert "pa@ss" not in repr(location)


def test_sibling_and_parent() -> None:
    location = parse_location("sftp://h/a/b/c.bin")
    assert location.sibling(".c.bin.part").path == "/a/b/.c.bin.part"
    assert location.parent.path == "/a/b"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty location"),
        ("http:/missing-slash", "expected 'http://'"),
        ("https:///no-host", "needs a host"),
        ("http://host:notaport/x", "malformed URI"),
        ("file://remote-host/x", "local path"),
        ("http://h/x#frag", "fragments"),
        ("/tmp/a\x00b", "NUL"),
    ],
)
def test_malformed_locations_name_the_input(text: str, fragment: str) -> None:
    with pytest.raises(InvalidURIError) as excinfo:
        parse_location(text)
    assert fragment in str(excinfo.value)


def test_malformed_uri_error_masks_password() -> None:
    with pytest.raises(InvalidURIError) as excinfo:
        parse_location("http://bob:hunter2@host:99999/x")
    assert "hunter2" not in str(excinfo.value)


@given(st.text(max_size=200))
def test_any_text_parses_or_gives_invalid_uri_error(text: str) -> None:
    try:
        location = parse_location(text, cwd="/base")
    except InvalidURIError as exc:
        assert str(exc)
    else:
        assert location.scheme
        if location.scheme == "file":
            assert os.path.isabs(location.path)


@given(
    user=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12),
    password=st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=6, max_size=20),
)
def test_password_never_in_redacted_form(user: str, password: str) -> None:
    from urllib.parse import quote

    text = f"sftp://{quote(user, safe='')}:{quote(password, safe='')}@host/path"
    assume(password not in f"sftp://{quote(user, safe='')}:***@host/path")
    location = parse_location(text)
    assert location.password == password
    assert password not in location.redacted()
    assert password not in str(location)
    assert location.url(include_password=True) == text


def test_secret_query_parameters_are_masked_for_display() -> None:
    text = ("https://bucket.s3.internal/export.csv?X-Amz-Credential=AKIA123&X-Amz-Signature="
            "abcdef0123&X-Amz-Expires=300&token=t0k3n&part=2")
    location = parse_location(text)
    shown = location.redacted()
    for secret in ("AKIA123", "abcdef0123", "t0k3n"):
        assert secret not in shown
        assert secret not in str(location)
    assert "X-Amz-Expires=300" in shown
    assert "part=2" in shown
    assert location.url() == text  # requests still carry the real query


@pytest.mark.parametrize("text", [
    "shelf:///r/in.bin", "mem:///a/b?x=1", "memory://bucket/key", "file:///tmp/a b",
    "sftp://user:pw@host:2222/x%20y", "smb://[::1]/share/dir/f", "http://h/?a=1&b=2",
])
def test_a_location_written_out_reads_back_the_same(text: str) -> None:
    # A host-less URI of any scheme keeps its empty authority: ``shelf:/r/in.bin`` would
    # read back as a local file.
    location = parse_location(text)
    written = location.url(include_password=True)
    assert written.startswith(f"{location.scheme}://")
    assert parse_location(written) == location
    if location.password is None and location.scheme != "file":
        assert parse_location(str(location)) == location


@given(
    scheme=st.sampled_from(["shelf", "mem", "x-store", "sftp", "http"]),
    host=st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)),
    segments=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")),
                              min_size=1, max_size=8).filter(lambda s: s not in (".", "..")
                                                             and "/" not in s), max_size=4),
)
def test_any_location_round_trips_through_its_url(
    scheme: str, host: str | None, segments: list[str]
) -> None:
    assume(host is not None or scheme not in ("sftp", "http"))
    location = Location(scheme, host, None, "/" + "/".join(segments))
    assert parse_location(location.url()) == location
