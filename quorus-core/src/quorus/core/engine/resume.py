"""Partial files and their records, which let an interrupted transfer continue, and the
decision where an attempt starts (:func:`resume_point`).

A transfer to a destination that supports rename writes ``.NAME.quorus-partial`` beside the
destination, and ``.NAME.quorus-partial.json`` records which version of which source it holds.
A rerun continues from the partial's length only when the record matches the source as it is
now; otherwise it starts over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from quorus.core.engine.model import TransferRequest
from quorus.core.engine.pipeline import pump
from quorus.core.engine.progress import ProgressTracker
from quorus.core.errors import NotFoundError, TransferError, UnsupportedOperationError
from quorus.core.protocol import FileInfo, TransferProtocol
from quorus.core.uri import Location

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".quorus-partial"
RECORD_SUFFIX = ".quorus-partial.json"
_RECORD_VERSION = 1
#: The record of a partial file that must not be resumed (its source has no usable identity,
#: or resuming was turned off); it matches no source identity.
NOT_RESUMABLE: dict[str, Any] = {"version": _RECORD_VERSION, "resumable": False}
_MAX_RECORD_BYTES = 64 * 1024


@dataclass(frozen=True)
class PartialFile:
    """Where the partial data and its record live for one destination."""

    data: Location
    record: Location

    @classmethod
    def beside(cls, destination: Location) -> PartialFile:
        name = destination.name
        return cls(
            data=destination.sibling(f".{name}{PARTIAL_SUFFIX}"),
            record=destination.sibling(f".{name}{RECORD_SUFFIX}"),
        )


def source_identity(source: Location, info: FileInfo) -> dict[str, Any]:
    """What must be unchanged for a partial file of ``source`` to be continued."""
    return {"version": _RECORD_VERSION, "source": source.redacted(), **info.identity()}


def identity_is_usable(identity: dict[str, Any]) -> bool:
    """A source without a known size and some version marker cannot be resumed safely."""
    return identity.get("size") is not None and (
        identity.get("etag") is not None or identity.get("mtime") is not None
    )


async def read_record(protocol: TransferProtocol, partial: PartialFile) -> dict[str, Any] | None:
    """The stored record, or ``None`` when absent or unreadable (then the transfer starts over)."""
    try:
        async with await protocol.open_read(partial.record, 0, _MAX_RECORD_BYTES) as stream:
            chunks = []
            while chunk := await stream.read():
                chunks.append(chunk)
    except TransferError:
        return None
    try:
        record = json.loads(b"".join(chunks))
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


async def write_record(
    protocol: TransferProtocol, partial: PartialFile, identity: dict[str, Any]
) -> None:
    async with await protocol.open_write(partial.record) as stream:
        await stream.write(json.dumps(identity, sort_keys=True).encode())
        await stream.commit()


async def discard(protocol: TransferProtocol, partial: PartialFile) -> None:
    """Remove the partial file and its record; absent ones are fine."""
    await discard_data(protocol, partial)
    await drop_record(protocol, partial)


async def discard_data(protocol: TransferProtocol, partial: PartialFile) -> None:
    """Remove the partial file only; an absent one is fine."""
    await _delete_quietly(protocol, partial.data)


async def drop_record(protocol: TransferProtocol, partial: PartialFile) -> None:
    """Remove the record once the partial file has been renamed into place."""
    await _delete_quietly(protocol, partial.record)


async def _delete_quietly(protocol: TransferProtocol, location: Location) -> None:
    # A protocol that renames but cannot delete leaves records behind rather than failing.
    with contextlib.suppress(NotFoundError, UnsupportedOperationError):
        await protocol.delete(location)


async def resume_point(
    request: TransferRequest,
    src: TransferProtocol,
    dst: TransferProtocol,
    info: FileInfo,
    partial: PartialFile,
    tracker: ProgressTracker,
) -> tuple[int, hashlib._Hash]:
    """Where to start writing, and a hasher already fed with the bytes kept."""
    identity = source_identity(request.source, info)
    resumable = (
        request.resume
        and identity_is_usable(identity)
        and src.capabilities(request.source).ranged_read
        and dst.capabilities(partial.data).write_at_offset
    )
    if resumable:
        record = await read_record(dst, partial)
        kept = await stat_or_none(dst, partial.data)
        if (
            record == identity
            and kept is not None
            and kept.size
            and info.size is not None
            and kept.size <= info.size
        ):
            hasher = hashlib.sha256()
            tracker.reset(0, kept.size)
            async with await dst.open_read(partial.data, 0, kept.size) as stream:
                rehashed = await pump(stream, hasher, on_chunk=tracker.advance)
            if rehashed == kept.size:
                log.info("resuming %s at byte %d", request.source, kept.size)
                return kept.size, hasher
    # Start over. The record is rewritten in place, never deleted here: it is also the
    # lock file of this attempt, and a new file under its name would be a second lock.
    await discard_data(dst, partial)
    await write_record(dst, partial, identity if resumable else NOT_RESUMABLE)
    return 0, hashlib.sha256()


async def stat_or_none(protocol: TransferProtocol, location: Location) -> FileInfo | None:
    """``protocol.stat(location)``, or ``None`` when nothing is there."""
    try:
        return await protocol.stat(location)
    except NotFoundError:
        return None


def source_changed(before: FileInfo, now: FileInfo) -> bool:
    """True when two descriptions of a source name different versions of it."""
    pairs = ((before.size, now.size), (before.etag, now.etag), (before.mtime, now.mtime))
    return any(a is not None and b is not None and a != b for a, b in pairs)


__all__ = [
    "NOT_RESUMABLE",
    "PARTIAL_SUFFIX",
    "RECORD_SUFFIX",
    "PartialFile",
    "discard",
    "discard_data",
    "drop_record",
    "identity_is_usable",
    "read_record",
    "resume_point",
    "source_changed",
    "source_identity",
    "stat_or_none",
    "write_record",
]
