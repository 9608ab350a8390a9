"""One attempt of an assigned job, run with the transfer engine and placed without clashing
with any other attempt of the same job.

Two attempts of one job may run at the same time on different agents (a partitioned agent
that has not yet heard its attempt moved, and the agent that took the next attempt). They
must never write the same file. So an attempt does not let the engine write beside the final
name: it asks the engine for a transfer to a *staging name* that carries the job id and the
attempt number (``.NAME.JOB.aN.quorus-attempt``, beside the destination). The engine writes
that through its own partial file, verifies size and SHA-256 and renames it to the staging
name; only then does the attempt rename the staging file to the destination, an atomic
rename of a complete, verified file:

- the partial files of two attempts have different names, so neither can damage the other;
- under the overwrite policy ``fail``, the final rename refuses to replace (``link``): the
  first attempt to finish places the file; a later one finding the very bytes it verified
  (same SHA-256) reports success, any other content fails with ``DestinationExistsError``.
  Only the first attempt refuses an existing destination before it starts: a later one may
  find the file an earlier attempt placed before its agent was lost;
- under ``overwrite`` the last rename wins, and both attempts verified the same source;
- an aborted or failed attempt removes its own staging and partial files, never another's.

Retries inside one attempt (the engine's) resume the attempt's partial file; a new attempt
starts from zero. A destination whose protocol cannot rename (plain HTTP PUT) is written in
place by the engine, as the engine always does for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from quorus.core import errors
from quorus.core.agentproto import Assign, TransferOptions
from quorus.core.confine import Confinement
from quorus.core.engine import (
    ExpectedChecksum,
    OverwritePolicy,
    RetryPolicy,
    SizeRange,
    TransferEngine,
    TransferProgress,
    TransferRequest,
    TransferStatus,
    resume,
)
from quorus.core.engine.pipeline import pump
from quorus.core.protocol import TransferProtocol
from quorus.core.uri import Location, parse_location

log = logging.getLogger(__name__)

STAGING_SUFFIX = ".quorus-attempt"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
#: Seconds allowed for removing an aborted attempt's files.
CLEANUP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class AttemptSucceeded:
    """The destination holds ``size`` bytes with this SHA-256."""

    size: int
    sha256: str
    duration: float


@dataclass(frozen=True, slots=True)
class AttemptFailedWith:
    """The attempt failed; ``retryable``: another attempt (maybe elsewhere) may succeed."""

    error_type: str
    message: str
    retryable: bool


AttemptOutcome = AttemptSucceeded | AttemptFailedWith


def staging_location(destination: Location, job_id: str, attempt: int) -> Location:
    """The attempt-scoped name the engine writes to, beside ``destination``."""
    job = _UNSAFE.sub("_", job_id)
    if job != job_id or len(job) > 64:
        job = f"{job[:40]}-{hashlib.sha256(job_id.encode()).hexdigest()[:16]}"
    name = destination.name
    if len(name) > 120:
        name = hashlib.sha256(name.encode()).hexdigest()[:32]
    return destination.sibling(f".{name}.{job}.a{attempt}{STAGING_SUFFIX}")


def build_request(assign: Assign, destination: Location, *, staged: bool) -> TransferRequest:
    """The engine request for ``assign``, written to ``destination``: a staging name
    (``staged``: the attempt applies the overwrite policy itself) or the destination."""
    options = assign.options
    overwrite = OverwritePolicy.OVERWRITE if staged else options.overwrite
    return TransferRequest(
        source=_location(assign.source),
        destination=destination,
        checksum=ExpectedChecksum("sha256", options.checksum) if options.checksum else None,
        size=_size_range(options),
        retry=RetryPolicy(max_attempts=options.retries + 1),
        overwrite=overwrite,
        bandwidth_limit=options.bandwidth_limit,
        create_directories=options.create_directories,
        mode=options.mode,
        streams=options.streams,
        request_id=f"{assign.job_id}.a{assign.attempt}",
    )


def _size_range(options: TransferOptions) -> SizeRange | None:
    if options.size is not None:
        return SizeRange(options.size, options.size)
    if options.size_min is not None or options.size_max is not None:
        return SizeRange(options.size_min, options.size_max)
    return None


def protocol_options(options: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """A job's ``SCHEME.KEY`` → value options as the engine takes them, by scheme. As with
    ``quorus transfer -o``, each further dot opens a group: ``http.headers.X-Team`` gives
    ``{"http": {"headers": {"X-Team": ...}}}``."""
    by_scheme: dict[str, dict[str, Any]] = {}
    for name, value in options.items():
        scheme, sep, key = name.partition(".")
        if not (sep and scheme and key):
            raise errors.ConfigurationError(
                f"protocol option {name!r}: expected SCHEME.KEY, e.g. sftp.known_hosts"
            )
        group, dot, inner = key.partition(".")
        target = by_scheme.setdefault(scheme, {})
        nested = target.setdefault(group, {}) if dot else None
        if not dot and not isinstance(target.get(key), dict):
            target[key] = value
            continue
        if not isinstance(nested, dict) or not inner:
            raise errors.ConfigurationError(
                f"protocol option {name!r}: {scheme}.{group} is given both as a value and as "
                "a group")
        nested[inner] = value
    return by_scheme


def _location(uri: str) -> Location:
    return parse_location(uri, cwd="/")


def is_retryable(error_type: str | None) -> bool:
    """Whether another attempt may cure an error of this class: the class's own answer for
    Quorus errors; yes for a class this agent does not know (another agent may have the
    plugin or the network it lacks), and the controller's retry policy caps attempts."""
    cls = getattr(errors, error_type or "", None)
    if isinstance(cls, type) and issubclass(cls, errors.TransferError):
        return cls.retryable
    return not (isinstance(cls, type) and issubclass(cls, errors.QuorusError))


def failure(exc: BaseException) -> AttemptFailedWith:
    retryable = exc.retryable if isinstance(exc, errors.TransferError) else is_retryable(
        type(exc).__name__
    )
    return AttemptFailedWith(type(exc).__name__, str(exc), retryable)


async def run_attempt(
    engine: TransferEngine,
    assign: Assign,
    on_progress: Callable[[TransferProgress], None],
) -> AttemptOutcome:
    """Run ``assign`` to its end; cancellation (an abort) removes the attempt's own files."""
    started = anyio.current_time()
    try:
        source = _location(assign.source)
        destination = _location(assign.destination)
        check_storage(assign, source)
        dst = engine.protocol(destination)
        dst.check_location(destination)
        staged = dst.capabilities(destination).rename
    except errors.QuorusError as exc:
        return failure(exc)
    if not staged:
        return await _direct(engine, assign, destination, on_progress, started)
    policy = assign.options.overwrite
    staging = staging_location(destination, assign.job_id, assign.attempt)
    try:
        existing = await resume.stat_or_none(dst, destination)
        if existing is not None:
            skipped = await _existing(engine, assign, source, destination, dst, existing.is_dir)
            if skipped is not None:
                return skipped
        result = await engine.transfer(build_request(assign, staging, staged=True), on_progress=on_progress)
        if not result.ok:
            await _discard(dst, staging)
            return AttemptFailedWith(
                result.error_type or "TransferError",
                result.error or "the transfer failed",
                is_retryable(result.error_type),
            )
        assert result.sha256 is not None
        await _place(dst, staging, destination, policy, result.sha256)
        return AttemptSucceeded(result.bytes, result.sha256, anyio.current_time() - started)
    except errors.QuorusError as exc:
        await _discard(dst, staging)
        return failure(exc)
    except anyio.get_cancelled_exc_class():
        await _discard(dst, staging)
        raise


def check_storage(assign: Assign, source: Location) -> None:
    """Refuse, before anything is opened, a destination (or a local source) outside the
    storage roots the job is confined to. The confined ``file`` protocol then also refuses
    any symbolic link on the way, which a lexical check cannot see."""
    roots = assign.options.storage_roots
    if roots is None:
        return
    confinement = Confinement(roots)
    confinement.check(assign.destination)
    if source.scheme == "file":
        confinement.check(assign.source)


async def _direct(
    engine: TransferEngine,
    assign: Assign,
    destination: Location,
    on_progress: Callable[[TransferProgress], None],
    started: float,
) -> AttemptOutcome:
    result = await engine.transfer(build_request(assign, destination, staged=False), on_progress=on_progress)
    if result.status is TransferStatus.FAILED or result.sha256 is None:
        return AttemptFailedWith(
            result.error_type or "TransferError", result.error or "the transfer failed",
            is_retryable(result.error_type),
        )
    return AttemptSucceeded(result.bytes, result.sha256, anyio.current_time() - started)


async def _existing(
    engine: TransferEngine,
    assign: Assign,
    source: Location,
    destination: Location,
    dst: TransferProtocol,
    is_dir: bool,
) -> AttemptOutcome | None:
    """Apply the overwrite policy to a destination that exists before the attempt starts:
    a failure, a success (``skip-same`` and the same bytes), or ``None`` to go on."""
    if is_dir:
        raise errors.NotAFileError(
            f"destination {destination.redacted()} is a directory: give the path of the file"
        )
    policy = assign.options.overwrite
    if policy is OverwritePolicy.FAIL and assign.attempt > 1:
        # An earlier attempt of this job may have placed the file and then lost its agent
        # or its report: go on, and the final rename accepts the very bytes it verifies.
        return None
    if policy is OverwritePolicy.FAIL:
        raise errors.DestinationExistsError(
            f"destination {destination.redacted()} exists (overwrite policy 'fail')"
        )
    if policy is OverwritePolicy.SKIP_SAME:
        started = anyio.current_time()
        have = await _digest(dst, destination)
        want = assign.options.checksum or await _digest(engine.protocol(source), source)
        if have == want:
            info = await dst.stat(destination)
            return AttemptSucceeded(info.size or 0, have, anyio.current_time() - started)
    return None


async def _place(
    dst: TransferProtocol, staging: Location, destination: Location, policy: OverwritePolicy,
    sha256: str,
) -> None:
    """Rename the verified staging file to the destination (see the module docstring)."""
    try:
        await dst.rename(staging, destination, replace=policy is not OverwritePolicy.FAIL)
    except errors.DestinationExistsError:
        if await _digest(dst, destination) != sha256:
            raise
        log.info("%s already holds the verified bytes (another attempt placed them)",
                 destination.redacted())
        await _discard(dst, staging)


async def _digest(protocol: TransferProtocol, location: Location) -> str:
    hasher = hashlib.sha256()
    async with await protocol.open_read(location) as stream:
        await pump(stream, hasher)
    return hasher.hexdigest()


async def _discard(dst: TransferProtocol, staging: Location) -> None:
    """Remove this attempt's staging file, partial file and record; absent ones are fine."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
        for location in (staging, *_partial_names(staging)):
            with contextlib.suppress(errors.QuorusError, OSError):
                await dst.delete(location)


def _partial_names(staging: Location) -> tuple[Location, Location]:
    partial = resume.PartialFile.beside(staging)
    return partial.data, partial.record


__all__ = [
    "CLEANUP_TIMEOUT",
    "STAGING_SUFFIX",
    "AttemptFailedWith",
    "AttemptOutcome",
    "AttemptSucceeded",
    "build_request",
    "is_retryable",
    "protocol_options",
    "run_attempt",
    "staging_location",
]
