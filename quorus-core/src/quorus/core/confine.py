"""Storage confinement: paths and locations that must resolve inside allowed roots.

Three levels, each for where it runs. :func:`resolve_inside` and :func:`location_inside` are
lexical (no filesystem), for admission on a controller. :func:`check_local_destination`
also follows the symbolic links that exist on the local disk. :func:`open_destination_safely`
and :class:`Confinement` are what an agent uses to touch files: they walk from the root to the
file's directory one component at a time, refusing any symbolic link, so a link swapped in
after a check cannot redirect a read or a write. The ``file`` protocol's ``confine`` option
uses them for every operation; a tenancy package supplies the roots.

Unicode is normalised to NFC (what most filesystems and SMB servers store). A name whose NFKC
compatibility form would be ``.``, ``..`` or contain a separator (two-dot leader U+2025,
fullwidth full stops U+FF0E, fullwidth solidus U+FF0F) is refused rather than kept: some
layer (an SMB server, a client's best-fit mapping) may fold it into the ASCII character.
Likewise a name that percent-decodes (once or more) to ``.``, ``..`` or a separator is
refused, in case a URL layer decodes it later.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import functools
import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import cast
from urllib.parse import unquote, urlsplit

from quorus.core.errors import (
    NotFoundError,
    PathOutsideRootsError,
    StoragePathError,
    UnsafePathError,
)

#: Longest path accepted, in UTF-8 bytes (Linux's PATH_MAX).
MAX_PATH_BYTES = 4096
#: Longest single name accepted, in UTF-8 bytes (NAME_MAX of common filesystems).
MAX_NAME_BYTES = 255

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SEPARATORS = ("/", "\\")


def _check_name(name: str, path: str) -> None:
    if name.isascii() and "%" not in name:
        # The common case, measured at most of admission's cost: plain ASCII without '%'
        # neither percent-decodes nor folds (NFKC leaves ASCII as it is), so only the
        # name itself needs looking at.
        if len(name) > MAX_NAME_BYTES or name in (".", "..") or "\\" in name or "\0" in name:
            _check_slowly(name, path)
        return
    _check_slowly(name, path)


def _check_slowly(name: str, path: str) -> None:
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise UnsafePathError(
            f"path {path!r} has a name longer than {MAX_NAME_BYTES} bytes: {name[:40]!r}…"
        )
    decoded = name
    # Bounded: each round shortens the text or stops; three covers triple encoding.
    for _ in range(3):
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    for form, how in ((decoded, "percent-decodes"), (unicodedata.normalize("NFKC", name), "folds")):
        if form in (".", "..") or any(sep in form for sep in _SEPARATORS) or "\0" in form:
            raise UnsafePathError(
                f"path {path!r} has the name {name!r}, which {how} to {form!r}: "
                "rename it with plain characters"
            )


def normalise_path(path: str, *, backslash_separates: bool = False) -> str:
    """``path`` absolute and normalised: NFC, no ``.``/``..``/empty components (``..`` above
    ``/`` stays at ``/``, as POSIX does). Raises :class:`UnsafePathError` for NUL bytes,
    overlong input, relative paths and look-alike names (see the module docstring)."""
    if not isinstance(path, str):
        raise UnsafePathError(f"a path must be text, not {type(path).__name__}")
    if "\0" in path:
        raise UnsafePathError(f"path {path!r} contains a NUL byte: refused")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise UnsafePathError(f"path {path[:60]!r}… is longer than {MAX_PATH_BYTES} bytes: refused")
    text = unicodedata.normalize("NFC", path)
    if backslash_separates:
        text = text.replace("\\", "/")
    if not text.startswith("/"):
        raise UnsafePathError(f"path {path!r} is not absolute: give the full path from '/'")
    kept: list[str] = []
    for name in text.split("/"):
        if name in ("", "."):
            continue
        if name == "..":
            if kept:
                kept.pop()
            continue
        _check_name(name, path)
        kept.append(name)
    return "/" + "/".join(kept)


def _fold(text: str, case_insensitive: bool) -> str:
    if not case_insensitive:
        return text
    # One character for one character, like an SMB server's upper-case table: full case
    # folding ('ß' -> 'ss') would call names equal that the server keeps apart, and could let
    # a path pass as inside a root it is not inside.
    return "".join(ch.upper() if len(ch.upper()) == 1 else ch for ch in text)


def _within(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def _normalise_roots(roots: Sequence[str], backslash_separates: bool) -> list[str]:
    if isinstance(roots, str):
        raise TypeError("roots must be a sequence of paths, not one string")
    normalised = []
    for root in roots:
        try:
            normalised.append(normalise_path(root, backslash_separates=backslash_separates))
        except UnsafePathError as exc:
            raise UnsafePathError(f"allowed root {root!r} is not usable: {exc}") from None
    return normalised


def _containing_root(path: str, roots: Sequence[str], case_insensitive: bool) -> str | None:
    key = _fold(path, case_insensitive)
    matches = [root for root in roots if _within(key, _fold(root, case_insensitive))]
    return max(matches, key=len) if matches else None


def _outside(
    path: str, resolved: str, roots: Sequence[str], how: str = ""
) -> PathOutsideRootsError:
    if not roots:
        return PathOutsideRootsError(
            f"path {path!r} is refused: no storage roots are allowed here; "
            "ask an administrator to allow a root"
        )
    return PathOutsideRootsError(
        f"path {path!r} resolves to {resolved!r}{how}, outside the allowed roots "
        f"{', '.join(roots)}: write under one of them, or ask an administrator to add a root"
    )


def resolve_inside(path: str, roots: Sequence[str], *, case_insensitive: bool = False) -> str:
    """``path`` normalised (see :func:`normalise_path`), if it lies inside one of ``roots``.

    ``case_insensitive`` is for SMB shares: names compare without case and ``\\`` separates
    like ``/``. Use the returned path, not ``path``: ``..`` was resolved lexically, and the
    check holds for the returned text only. Raises :class:`PathOutsideRootsError` or
    :class:`UnsafePathError`.
    """
    normalised_roots = _normalise_roots(roots, case_insensitive)
    resolved = normalise_path(path, backslash_separates=case_insensitive)
    if _containing_root(resolved, normalised_roots, case_insensitive) is None:
        raise _outside(path, resolved, normalised_roots)
    return resolved


def check_local_destination(path: str, roots: Sequence[str]) -> str:
    """``path`` with every symbolic link of its existing ancestors resolved, if that still
    lies inside ``roots`` (themselves resolved). A link inside a root that points outside is
    a :class:`PathOutsideRootsError`; one pointing elsewhere inside is fine."""
    lexical = resolve_inside(path, roots)
    real_roots = [os.path.realpath(root) for root in _normalise_roots(roots, False)]
    existing, rest = lexical, ""
    while not os.path.lexists(existing) and existing != "/":
        existing, name = os.path.split(existing)
        rest = name if not rest else f"{name}/{rest}"
    real = os.path.realpath(existing)
    if rest:
        real = os.path.join(real, rest)
    if _containing_root(real, real_roots, False) is None:
        raise _outside(path, real, real_roots, " through a symbolic link")
    return real


class DestinationDirectory:
    """The open directory a destination is written in, reached without following any link.

    ``fd`` is the directory's descriptor and ``name`` the file's name in it: open the file
    with :meth:`open_file` (which refuses a link there too), and rename with
    ``os.rename(..., src_dir_fd=fd, dst_dir_fd=fd)``. Close it (or use ``with``) when done.
    """

    __slots__ = ("fd", "name", "path")

    def __init__(self, fd: int, name: str, path: str) -> None:
        self.fd = fd
        self.name = name
        self.path = path

    def open_file(
        self, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode: int = 0o644
    ) -> int:
        """A descriptor for ``name`` in the directory; a symbolic link there is refused."""
        try:
            return os.open(self.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathOutsideRootsError(
                    f"destination {self.path!r} is a symbolic link: refused, nothing written"
                ) from None
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> DestinationDirectory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_destination_safely(
    path: str, roots: Sequence[str], *, create_parents: bool = False, dir_mode: int = 0o755
) -> DestinationDirectory:
    """Open the directory ``path`` is to be written in, walking from its root with
    ``O_DIRECTORY | O_NOFOLLOW`` one component at a time (each relative to the last).

    A symbolic link anywhere below the root, even one swapped in after
    :func:`check_local_destination` passed, is a :class:`PathOutsideRootsError`. Missing
    directories are a :class:`~quorus.core.errors.NotFoundError` unless ``create_parents``.
    The roots themselves are configuration and are opened as they are.
    """
    if os.open not in os.supports_dir_fd or not hasattr(os, "O_NOFOLLOW"):
        raise UnsafePathError("writing safely needs openat() and O_NOFOLLOW: a POSIX system")
    lexical = resolve_inside(path, roots)
    root = _containing_root(lexical, _normalise_roots(roots, False), False)
    assert root is not None  # resolve_inside found one
    names = [name for name in lexical[len(root) :].split("/") if name]
    if not names:
        raise UnsafePathError(f"path {path!r} is the root {root!r} itself: name a file under it")
    directory_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    walked = root.rstrip("/")
    try:
        for name in names[:-1]:
            walked = f"{walked}/{name}"
            try:
                child = os.open(name, directory_flags, dir_fd=fd)
            except FileNotFoundError:
                if not create_parents:
                    raise NotFoundError(
                        f"directory {walked!r} of destination {path!r} does not exist"
                    ) from None
                # Someone else may create it meanwhile; the O_NOFOLLOW open below decides.
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, dir_mode, dir_fd=fd)
                child = _open_child(name, directory_flags, fd, walked, path)
            except OSError as exc:
                raise _refused_component(exc, walked, path) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return DestinationDirectory(fd, names[-1], lexical)


def _open_child(name: str, flags: int, fd: int, walked: str, path: str) -> int:
    try:
        return os.open(name, flags, dir_fd=fd)
    except OSError as exc:
        raise _refused_component(exc, walked, path) from None


def _refused_component(exc: OSError, walked: str, path: str) -> Exception:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return PathOutsideRootsError(
            f"{walked!r} on the way to destination {path!r} is a symbolic link or not a "
            "directory: refused, nothing written"
        )
    return exc


def normalise_location(uri_or_path: str, *, case_insensitive: bool = False) -> str:
    """A location in the form ``allowedDestinations`` patterns are matched against: scheme
    and host in lower case, credentials, query and fragment dropped, the path percent-decoded
    and normalised; a ``file:`` URI on this host and a plain path become the path itself."""
    if not isinstance(uri_or_path, str):
        raise UnsafePathError(f"a location must be text, not {type(uri_or_path).__name__}")
    if "\0" in uri_or_path:
        raise UnsafePathError(f"location {uri_or_path!r} contains a NUL byte: refused")
    if _SCHEME.match(uri_or_path) is None:
        return normalise_path(uri_or_path, backslash_separates=case_insensitive)
    try:
        parts = urlsplit(uri_or_path)
        port = parts.port
    except ValueError as exc:
        raise UnsafePathError(f"location {uri_or_path!r} is not a valid URI: {exc}") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    decoded = unquote(parts.path) or "/"
    if "\0" in decoded:
        raise UnsafePathError(f"location {uri_or_path!r} encodes a NUL byte: refused")
    path = normalise_path(
        decoded if decoded.startswith("/") else "/" + decoded,
        backslash_separates=case_insensitive,
    )
    if scheme == "file" and host in ("", "localhost"):
        return path
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{scheme}://{netloc}" + ("" if path == "/" else path)


@functools.lru_cache(maxsize=4096)
def _pattern_matcher(pattern: str, case_insensitive: bool) -> Callable[[str], bool]:
    """``pattern`` normalised and compiled once (admission checks every job against the same
    few roots)."""
    translated = fnmatch.translate(_fold(_normalise_pattern(pattern), case_insensitive))
    return cast(Callable[[str], bool], re.compile(translated).match)


def _normalise_pattern(pattern: str) -> str:
    text = unicodedata.normalize("NFC", pattern)
    match = _SCHEME.match(text)
    if match is None:
        return text
    authority, slash, rest = text[match.end() :].partition("/")
    return f"{match.group(1).lower()}://{authority.lower()}{slash}{rest}"


def location_inside(
    uri_or_path: str, allowed_destinations: Sequence[str], *, case_insensitive: bool = False
) -> bool:
    """Whether ``uri_or_path``, normalised (:func:`normalise_location`), matches one of the
    ``allowedDestinations`` patterns (shell wildcards; ``*`` spans ``/``, so
    ``/data/acme-corp/*`` covers the whole tree). Unsafe locations raise
    :class:`UnsafePathError` whatever the patterns."""
    location = _fold(
        normalise_location(uri_or_path, case_insensitive=case_insensitive), case_insensitive
    )
    return any(_pattern_matcher(pattern, case_insensitive)(location) is not None
               for pattern in allowed_destinations)


_WILDCARD = re.compile(r"[*?\[]")


def pattern_anchor(pattern: str) -> str | None:
    """The local directory a root pattern's tree hangs from: its path up to the first
    component with a wildcard (``/data/acme/*`` → ``/data/acme``, ``/data/*/in`` → ``/data``);
    ``None`` for a pattern on another host (``sftp://...``)."""
    text = unicodedata.normalize("NFC", pattern)
    match = _SCHEME.match(text)
    if match is not None:
        authority, _, path = text[match.end() :].partition("/")
        if match.group(1).lower() != "file" or authority.lower() not in ("", "localhost"):
            return None
        text = "/" + path
    kept: list[str] = []
    for name in text.split("/"):
        if _WILDCARD.search(name):
            break
        kept.append(name)
    return normalise_path("/".join(kept) or "/")


def tree_patterns(roots: Sequence[str]) -> tuple[str, ...]:
    """``roots`` as :func:`location_inside` patterns: a root without a wildcard covers itself
    and everything below it (``/data/acme`` admits ``/data/acme/x/y``)."""
    return _tree_patterns(roots if isinstance(roots, tuple) else tuple(roots))


@functools.lru_cache(maxsize=4096)
def _tree_patterns(roots: tuple[str, ...]) -> tuple[str, ...]:
    found: list[str] = []
    for root in roots:
        if _WILDCARD.search(root):
            found.append(root)
        else:
            found += [root.rstrip("/") or "/", f"{root.rstrip('/')}/*"]
    return tuple(found)


class Confinement:
    """Roots (paths, ``file:`` URIs or shell patterns as ``allowedDestinations`` takes them)
    that every location must stay inside, and the means to touch local files inside them
    without following a symbolic link.

    :meth:`check` is lexical and works for any scheme. :meth:`directory` opens the directory
    a local path lives in by walking from the path's *anchor* (the literal directory part of
    the pattern that admits it) one component at a time with ``O_NOFOLLOW``; the anchors are
    configuration and are trusted as they are. A path that is an anchor itself is returned
    as is (``fd`` ``None``).
    """

    __slots__ = ("_matching", "anchors", "patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        if isinstance(patterns, str):
            raise TypeError("patterns must be a sequence of roots, not one string")
        self.patterns = tuple(patterns)
        self._matching = tree_patterns(self.patterns)
        anchors = {a for a in map(pattern_anchor, self.patterns) if a is not None}
        self.anchors = tuple(sorted(anchors, key=len, reverse=True))

    def __repr__(self) -> str:
        return f"Confinement({list(self.patterns)!r})"

    def check(self, location: str) -> str:
        """``location`` normalised, if it matches one of the patterns; otherwise
        :class:`PathOutsideRootsError` (or :class:`UnsafePathError` for hostile text)."""
        normalised = normalise_location(location)
        if not location_inside(normalised, self._matching):
            raise PathOutsideRootsError(
                f"{location!r} is outside the allowed storage ({', '.join(self.patterns)}): "
                "refused, nothing read or written"
            )
        return normalised

    def directory(self, path: str, *, create: bool = False) -> DestinationDirectory | None:
        """The open directory local ``path`` lives in, reached without following links
        (``None`` when ``path`` is an anchor itself). ``create`` makes missing directories,
        the anchor included."""
        lexical = self.check(path)
        anchor = next((a for a in self.anchors if _within(lexical, a)), None)
        if anchor is None:
            raise PathOutsideRootsError(
                f"{path!r} matches the allowed storage ({', '.join(self.patterns)}) only "
                "through a wildcard above any local directory: name the roots as directories"
            )
        if lexical == anchor:
            return None
        if create:
            os.makedirs(anchor, exist_ok=True)
        try:
            return open_destination_safely(lexical, [anchor], create_parents=create)
        except FileNotFoundError:
            raise NotFoundError(f"storage root {anchor!r} of {path!r} does not exist") from None


__all__ = [
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "Confinement",
    "DestinationDirectory",
    "PathOutsideRootsError",
    "StoragePathError",
    "UnsafePathError",
    "check_local_destination",
    "location_inside",
    "normalise_location",
    "normalise_path",
    "open_destination_safely",
    "pattern_anchor",
    "resolve_inside",
    "tree_patterns",
]
