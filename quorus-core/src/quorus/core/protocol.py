"""The protocol interface every transfer protocol plugin implements.

A protocol is one small class per URI-scheme family, registered in the ``quorus.protocols``
entry-point group. The transfer engine only ever talks to this interface, so the built-in
``file`` and ``memory`` protocols and third-party plugins are interchangeable.

Streams are deliberately small: a :class:`ReadStream` yields chunks until ``b""``; a
:class:`WriteStream` accepts chunks and is then either committed (data durable and visible)
or aborted (nothing new becomes visible under the target name).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Self

from quorus.core.uri import Location

#: Options given to a protocol instance: plain values from configuration (timeouts, CA bundle,
#: headers, credential references such as ``env:NAME`` or ``file:/path``).
ProtocolOptions = Mapping[str, Any]


@dataclass(frozen=True)
class FileInfo:
    """What a protocol knows about one file or directory.

    ``etag`` and ``mtime`` identify a version of the file: if either changes between two
    reads, the engine treats the source as changed and does not resume.
    """

    location: Location
    size: int | None
    is_dir: bool = False
    mtime: float | None = None
    etag: str | None = None
    mode: int | None = None

    @property
    def name(self) -> str:
        return self.location.name

    def identity(self) -> dict[str, Any]:
        """The fields that identify this version of the file (for resume)."""
        return {"size": self.size, "mtime": self.mtime, "etag": self.etag}


@dataclass(frozen=True)
class Capabilities:
    """What a protocol can do for a given location.

    - ``ranged_read``: :meth:`TransferProtocol.open_read` honours ``offset``/``length``.
    - ``write_at_offset``: :meth:`TransferProtocol.open_write` can continue a partial file.
    - ``rename``: :meth:`TransferProtocol.rename` is atomic, so the engine writes to a partial
      name and renames it into place after verification. Without it the engine relies on
      :meth:`WriteStream.abort` leaving nothing visible.
    - ``listing``, ``delete``: the corresponding operations are available.
    - ``chunk_size``: the read size this protocol performs best with.
    - ``max_streams``: how many ranged reads of one file at once serve it faster than one
      (1: no gain). The engine reads large files as that many parallel streams, delivered in
      order, when ``ranged_read`` is true.
    """

    ranged_read: bool = False
    write_at_offset: bool = False
    rename: bool = False
    listing: bool = False
    delete: bool = False
    chunk_size: int = 1024 * 1024
    max_streams: int = 1


class ReadStream(abc.ABC):
    """A stream of bytes read from a file, starting at the offset it was opened at."""

    #: What the source reported when the stream was opened (size of the whole file, etag,
    #: mtime). Used to detect a source that changed since an interrupted attempt.
    info: FileInfo

    @abc.abstractmethod
    async def read(self) -> bytes:
        """Return the next chunk, or ``b""`` at the end.

        Raises :class:`~quorus.core.errors.TransientError` when the connection is lost and
        :class:`~quorus.core.errors.SourceChangedError` if the source changed underneath.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the stream's resources. Safe to call more than once."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class WriteStream(abc.ABC):
    """A stream of bytes written to a file.

    Exactly one of :meth:`commit` or :meth:`abort` ends it. Leaving the ``async with`` block
    without either aborts it.
    """

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Write ``data`` after what was written before."""

    @abc.abstractmethod
    async def commit(self) -> None:
        """Make everything written durable (flush, fsync) and visible."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Stop writing. For a partial file the bytes already written stay (for resume);
        for a protocol without rename, nothing new becomes visible at the target."""

    @property
    @abc.abstractmethod
    def finished(self) -> bool:
        """True once :meth:`commit` or :meth:`abort` ran."""

    def thread_writer(self) -> Callable[[bytes], None] | None:
        """A function that writes one chunk with blocking calls, or ``None`` (the default).

        Streams whose writes are blocking system calls (local files) return one: the engine
        then calls it from a worker thread of its own, one chunk at a time and in order (the
        hashing runs beside it in another thread), instead of awaiting :meth:`write`. It
        raises the same errors as :meth:`write`.
        """
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.finished:
            await self.abort()


class TransferProtocol(abc.ABC):
    """One protocol family (e.g. ``http`` and ``https``).

    Instances are created once per engine with the options for their scheme and may keep
    connections open between transfers; :meth:`aclose` releases them.

    Every method raises a :class:`~quorus.core.errors.TransferError` subclass on failure:
    :class:`~quorus.core.errors.NotFoundError`, :class:`~quorus.core.errors.PermissionDeniedError`,
    :class:`~quorus.core.errors.AuthenticationError`, :class:`~quorus.core.errors.NotAFileError`
    or, for failures worth retrying, :class:`~quorus.core.errors.TransientError`.
    """

    #: The URI schemes this class serves (its entry-point names).
    schemes: ClassVar[Sequence[str]] = ()

    def __init__(self, options: ProtocolOptions | None = None) -> None:
        self.options: ProtocolOptions = dict(options or {})

    @abc.abstractmethod
    def capabilities(self, location: Location) -> Capabilities:
        """What this protocol can do for ``location``."""

    def check_location(self, location: Location) -> None:  # noqa: B027 - optional check
        """Raise :class:`~quorus.core.errors.InvalidURIError` if ``location`` cannot name a
        file for this protocol (e.g. a required part is missing). Called before any I/O, so
        the CLI reports it as a usage error."""

    @abc.abstractmethod
    async def stat(self, location: Location) -> FileInfo:
        """Describe the file or directory at ``location``; :class:`NotFoundError` if absent."""

    @abc.abstractmethod
    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        """Open ``location`` for reading from ``offset`` (at most ``length`` bytes)."""

    @abc.abstractmethod
    async def open_write(
        self,
        location: Location,
        offset: int = 0,
        *,
        size_hint: int | None = None,
        mode: int | None = None,
    ) -> WriteStream:
        """Open ``location`` for writing. ``offset`` > 0 continues an existing partial file
        (only when ``write_at_offset``); 0 creates or truncates it."""

    async def list(self, location: Location) -> list[FileInfo]:
        """The entries of the directory at ``location``."""
        from quorus.core.errors import UnsupportedOperationError

        raise UnsupportedOperationError(f"{location.scheme}: listing is not supported")

    async def rename(self, source: Location, target: Location, *, replace: bool = True) -> None:
        """Rename ``source`` to ``target`` atomically; with ``replace=False`` an existing
        target raises :class:`~quorus.core.errors.DestinationExistsError`."""
        from quorus.core.errors import UnsupportedOperationError

        raise UnsupportedOperationError(f"{source.scheme}: rename is not supported")

    async def delete(self, location: Location) -> None:
        """Delete the file at ``location``; :class:`NotFoundError` if it does not exist."""
        from quorus.core.errors import UnsupportedOperationError

        raise UnsupportedOperationError(f"{location.scheme}: delete is not supported")

    async def makedirs(self, location: Location) -> None:
        """Create the directory ``location`` and its parents; existing ones are fine."""
        from quorus.core.errors import UnsupportedOperationError

        raise UnsupportedOperationError(f"{location.scheme}: creating directories is not supported")

    def lock(self, location: Location) -> AbstractAsyncContextManager[None]:
        """Hold an exclusive lock named by ``location`` for the length of the ``async with``.

        The engine takes it on a partial file's record for the whole of an attempt, so two
        transfers (in this process or another) never write the same partial file at once.
        Raises :class:`~quorus.core.errors.DestinationBusyError` when another holder has it.
        The default does nothing: protocols that cannot lock rely on callers not to overlap.
        """
        return contextlib.nullcontext()

    async def aclose(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release pooled connections."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


__all__ = [
    "Capabilities",
    "FileInfo",
    "ProtocolOptions",
    "ReadStream",
    "TransferProtocol",
    "WriteStream",
]
