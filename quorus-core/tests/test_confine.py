"""Storage isolation against hostile paths: traversal, encodings, look-alikes, NUL, symlinks,
and a symbolic link swapped in between the check and the write."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from quorus.core.confine import (
    MAX_NAME_BYTES,
    PathOutsideRootsError,
    StoragePathError,
    UnsafePathError,
    check_local_destination,
    location_inside,
    normalise_location,
    normalise_path,
    open_destination_safely,
    resolve_inside,
)
from quorus.core.errors import NotFoundError

ROOTS = ["/data/tenants/acme", "/srv/shared/acme/"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/tenants/acme/in/x.csv", "/data/tenants/acme/in/x.csv"),
        ("//data///tenants/acme/./in//x.csv", "/data/tenants/acme/in/x.csv"),
        ("/data/tenants/acme/in/../out/x.csv", "/data/tenants/acme/out/x.csv"),
        ("/data/tenants/acme", "/data/tenants/acme"),
        ("/srv/shared/acme/a", "/srv/shared/acme/a"),
        ("/data/tenants/acme/%41bc", "/data/tenants/acme/%41bc"),
        ("/data/tenants/acme/cafe\u0301", "/data/tenants/acme/caf\u00e9"),
    ],
)
def test_paths_inside_normalise(path: str, expected: str) -> None:
    assert resolve_inside(path, ROOTS) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/data/tenants/acme/../globex/x",
        "/data/tenants/acme/in/../../globex/x",
        "/data/tenants/acme/../../../../etc/passwd",
        "/etc/passwd",
        "/data/tenants/acme-evil/x",
        "/data/tenants",
        "/../data/tenants/acmex",
    ],
)
def test_escapes_are_refused_naming_the_path_and_the_roots(path: str) -> None:
    with pytest.raises(PathOutsideRootsError) as caught:
        resolve_inside(path, ROOTS)
    message = str(caught.value)
    assert repr(path) in message and "/data/tenants/acme, /srv/shared/acme" in message


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/data/tenants/acme/%2e%2e/globex", "percent-decodes to '..'"),
        ("/data/tenants/acme/%2E%2e/globex", "percent-decodes to '..'"),
        ("/data/tenants/acme/%252e%252e/globex", "percent-decodes to '..'"),
        ("/data/tenants/acme/a%2fb", "percent-decodes to 'a/b'"),
        ("/data/tenants/acme/\u2025/globex", "folds to '..'"),
        ("/data/tenants/acme/\uff0e\uff0e/globex", "folds to '..'"),
        ("/data/tenants/acme/a\uff0fb", "folds to 'a/b'"),
        ("/data/tenants/acme/\u2024", "folds to '.'"),
        ("/data/tenants/acme/x\0.csv", "NUL"),
        ("data/tenants/acme/x", "not absolute"),
        ("", "not absolute"),
        ("/data/tenants/acme/" + "a" * (MAX_NAME_BYTES + 1), "longer than 255"),
        ("/data/tenants/acme/" + "a/" * 3000, "longer than 4096"),
    ],
)
def test_hostile_paths_are_unsafe_whatever_the_roots(path: str, why: str) -> None:
    with pytest.raises(UnsafePathError, match=why):
        resolve_inside(path, ["/"])


def test_a_non_text_path_is_refused() -> None:
    with pytest.raises(UnsafePathError, match="must be text"):
        resolve_inside(b"/data/tenants/acme/x", ROOTS)  # type: ignore[arg-type]


def test_no_roots_refuses_everything_with_what_to_do() -> None:
    with pytest.raises(PathOutsideRootsError, match=r"no storage roots.*allow a root"):
        resolve_inside("/data/x", [])


def test_a_bad_root_is_named() -> None:
    with pytest.raises(UnsafePathError, match="allowed root 'relative/root'"):
        resolve_inside("/data/x", ["relative/root"])


def test_smb_roots_compare_without_case_and_treat_backslash_as_a_separator() -> None:
    roots = ["/Shares/ACME"]
    assert resolve_inside("/shares/acme/Reports/q1.xlsx", roots, case_insensitive=True) == (
        "/shares/acme/Reports/q1.xlsx"
    )
    assert resolve_inside("\\shares\\acme\\x", roots, case_insensitive=True) == "/shares/acme/x"
    with pytest.raises(PathOutsideRootsError):
        resolve_inside("/shares/acme\\..\\globex\\x", roots, case_insensitive=True)
    with pytest.raises(PathOutsideRootsError):
        resolve_inside("/shares/acme/x", roots)


def test_case_folding_never_equates_names_an_smb_server_keeps_apart() -> None:
    # 'ß' upper-cases to 'SS' under full case mapping; a server compares 'ß' with itself only.
    with pytest.raises(PathOutsideRootsError):
        resolve_inside("/data/strasse/x", ["/data/stra\u00dfe"], case_insensitive=True)


@given(st.lists(st.sampled_from(["..", ".", "", "a", "b", "acme", "%2e", "\u2025"]), max_size=12))
def test_whatever_the_components_a_resolved_path_is_inside_a_root(names: list[str]) -> None:
    path = "/data/tenants/acme/" + "/".join(names)
    try:
        resolved = resolve_inside(path, ["/data/tenants/acme"])
    except StoragePathError:
        return
    assert resolved == "/data/tenants/acme" or resolved.startswith("/data/tenants/acme/")
    assert "/../" not in resolved + "/" and normalise_path(resolved) == resolved


# -- the local filesystem -----------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A tenant root and a directory outside it."""
    root = tmp_path / "tenants" / "acme"
    outside = tmp_path / "elsewhere"
    (root / "in").mkdir(parents=True)
    outside.mkdir()
    return root, outside


def test_a_symlink_inside_the_root_pointing_outside_is_refused(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "escape").symlink_to(outside)
    with pytest.raises(PathOutsideRootsError, match="through a symbolic link"):
        check_local_destination(str(root / "escape" / "new" / "x.csv"), [str(root)])


def test_a_dangling_symlink_pointing_outside_is_refused(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "x.csv").symlink_to(outside / "does-not-exist.csv")
    with pytest.raises(PathOutsideRootsError):
        check_local_destination(str(root / "x.csv"), [str(root)])


def test_a_symlink_inside_pointing_inside_is_allowed(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "latest").symlink_to(root / "in")
    real = check_local_destination(str(root / "latest" / "sub" / "x.csv"), [str(root)])
    assert real == os.path.join(os.path.realpath(root), "in", "sub", "x.csv")


def test_a_root_reached_through_a_symlink_still_holds_its_files(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    alias = root.parent / "acme-alias"
    alias.symlink_to(root)
    assert check_local_destination(str(alias / "in" / "x"), [str(alias)]).endswith("/in/x")


def test_the_safe_opener_writes_inside(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with open_destination_safely(str(root / "in" / "x.csv"), [str(root)]) as directory:
        fd = directory.open_file()
        os.write(fd, b"hello")
        os.close(fd)
        assert directory.name == "x.csv"
    assert (root / "in" / "x.csv").read_bytes() == b"hello"


def test_the_safe_opener_creates_parents_only_when_asked(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    target = str(root / "new" / "deeper" / "x.csv")
    with pytest.raises(NotFoundError, match="new' of destination"):
        open_destination_safely(target, [str(root)])
    with open_destination_safely(target, [str(root)], create_parents=True) as directory:
        os.close(directory.open_file())
    assert (root / "new" / "deeper" / "x.csv").is_file()


def test_a_symlink_race_is_refused_by_the_safe_opener(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    target = str(root / "in" / "x.csv")
    assert check_local_destination(target, [str(root)])
    # Between the check and the write, the directory is swapped for a link to outside.
    (root / "in").rename(root / "in-old")
    (root / "in").symlink_to(outside)
    with pytest.raises(PathOutsideRootsError, match=r"acme/in' on the way .* symbolic link"):
        open_destination_safely(target, [str(root)])
    assert list(outside.iterdir()) == []


def test_writes_racing_a_directory_swapped_with_a_symlink_never_land_outside(
    tree: tuple[Path, Path],
) -> None:
    root, outside = tree
    (root / "in-link").symlink_to(outside)
    stop = threading.Event()

    def swap() -> None:
        # "in" alternates between the real directory and a link to outside.
        while not stop.is_set():
            os.rename(root / "in", root / "in-real")
            os.rename(root / "in-link", root / "in")
            os.rename(root / "in", root / "in-link")
            os.rename(root / "in-real", root / "in")

    swapper = threading.Thread(target=swap)
    swapper.start()
    written = refused = 0
    try:
        for n in range(2000):
            try:
                with open_destination_safely(str(root / "in" / f"{n}.csv"), [str(root)]) as d:
                    os.close(d.open_file())
                    written += 1
            except (PathOutsideRootsError, NotFoundError):
                refused += 1
    finally:
        stop.set()
        swapper.join()
    assert written + refused == 2000
    assert list(outside.iterdir()) == []


def test_a_symlink_as_the_final_name_is_refused(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "in" / "x.csv").symlink_to(outside / "stolen.csv")
    with (
        open_destination_safely(str(root / "in" / "x.csv"), [str(root)]) as directory,
        pytest.raises(PathOutsideRootsError, match="is a symbolic link"),
    ):
        directory.open_file()
    assert not (outside / "stolen.csv").exists()


def test_a_file_where_a_directory_is_expected_is_refused(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "plain").write_text("x")
    with pytest.raises(PathOutsideRootsError, match="not a directory"):
        open_destination_safely(str(root / "plain" / "x.csv"), [str(root)])


def test_the_safe_opener_refuses_the_root_itself(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with pytest.raises(UnsafePathError, match=r"root .* itself"):
        open_destination_safely(str(root), [str(root)])


def test_the_safe_opener_closes_what_it_opened(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for _ in range(20):
        with pytest.raises(NotFoundError):
            open_destination_safely(str(root / "in" / "missing" / "x"), [str(root)])
        open_destination_safely(str(root / "in" / "x"), [str(root)]).close()
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before


# -- allowedDestinations patterns ---------------------------------------------------------------

PATTERNS = ["s3://acme-corp-*", "/data/acme-corp/*", "sftp://files.acme.example/upload/*"]


@pytest.mark.parametrize(
    "location",
    [
        "s3://acme-corp-raw/2024/x.parquet",
        "S3://ACME-CORP-raw/x",
        "/data/acme-corp/in/x.csv",
        "file:///data/acme-corp/in/x.csv",
        "sftp://bob:secret@files.acme.example/upload/x",
        "sftp://files.acme.example/upload/a/../b",
    ],
)
def test_locations_matching_a_pattern_are_inside(location: str) -> None:
    assert location_inside(location, PATTERNS)


@pytest.mark.parametrize(
    "location",
    [
        "s3://globex-raw/x",
        "/data/acme-corp/../globex/x",
        "/data/acme-corp",
        "file:///data/acme-corp/%2e%2e/globex/x",
        "sftp://files.acme.example/upload/../../etc/passwd",
        "sftp://evil.example/upload/x",
        "file://otherhost/data/acme-corp/x",
    ],
)
def test_locations_outside_every_pattern_are_not(location: str) -> None:
    assert not location_inside(location, PATTERNS)


def test_percent_encoded_traversal_in_a_uri_is_decoded_before_matching() -> None:
    assert normalise_location("file:///data/acme-corp/%2e%2e/globex/x") == "/data/globex/x"
    with pytest.raises(UnsafePathError, match=r"percent-decodes to '\.\.'"):
        location_inside("s3://acme-corp-raw/%252e%252e/x", PATTERNS)


def test_credentials_query_and_fragment_are_dropped() -> None:
    assert normalise_location("https://u:p@Host.Example:8443/a/./b?sig=abc#frag") == (
        "https://host.example:8443/a/b"
    )
    assert normalise_location("s3://bucket") == "s3://bucket"


def test_unsafe_locations_raise() -> None:
    with pytest.raises(UnsafePathError, match="NUL"):
        location_inside("s3://acme-corp-x/a%00b", PATTERNS)
    with pytest.raises(UnsafePathError, match="not a valid URI"):
        location_inside("sftp://host:notaport/x", PATTERNS)


def test_smb_locations_match_without_case() -> None:
    assert location_inside(
        "smb://FS01/Share/ACME/x", ["smb://fs01/share/acme/*"], case_insensitive=True
    )
    assert not location_inside("smb://fs01/Share/ACME/x", ["smb://fs01/share/acme/*"])
