"""The transfer engine: moves one file at a time, verified, resumable and retried.

An attempt stats the source, applies the overwrite policy, continues a matching partial file
when it can, streams the data through :func:`~quorus.core.engine.pipeline.pump` into a partial
file beside the destination, verifies size and SHA-256, commits (fsync) and renames the
partial into place. A file under the final name is therefore always complete and verified.
Retryable failures are retried with exponential backoff; the next attempt resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import anyio
import pluggy
from quorus.core.engine import resume
from quorus.core.engine.model import (
    OverwritePolicy,
    TransferProgress,
    TransferRequest,
    TransferResult,
    TransferStatus,
)
from quorus.core.engine.pipeline import pump
from quorus.core.engine.progress import ProgressCallback, ProgressTracker
from quorus.core.engine.ratelimit import RateLimiter
from quorus.core.engine.striped import DEFAULT_CUTOFF, DEFAULT_STRIPE_SIZE, open_source
from quorus.core.errors import (
    ChecksumMismatchError,
    DestinationExistsError,
    NotAFileError,
    PluginError,
    QuorusError,
    SourceChangedError,
    TransferError,
    TransientError,
    UnsupportedOperationError,
    VerificationError,
)
from quorus.core.hooks import plugin_manager
from quorus.core.plugins import PROTOCOLS, PluginRegistry, registry
from quorus.core.protocol import FileInfo, ProtocolOptions, TransferProtocol
from quorus.core.uri import Location

log = logging.getLogger(__name__)


@dataclass
class _Outcome:
    status: TransferStatus
    size: int
    sha256: str
    bytes_transferred: int
    resumed_from: int


class TransferEngine:
    """Runs transfers; holds one protocol instance per scheme so connections are reused.

    ``protocol_options`` maps a URI scheme to the options for its protocol (credentials as
    ``env:NAME`` or ``file:/path`` references, CA bundles, timeouts, ...). At most
    ``max_concurrent`` transfers run at once; more wait their turn. ``protocols`` maps a
    scheme to a ready-made protocol instance to use instead of loading its plugin; the caller
    keeps ownership of those (the engine does not close them). Sources with at least
    ``stream_cutoff`` bytes left are read as several parallel ranged streams of ``stripe_size``
    pieces when their protocol benefits (see :mod:`quorus.core.engine.striped`).

    Use as an async context manager, or call :meth:`aclose` when done.
    """

    def __init__(
        self,
        *,
        protocol_options: Mapping[str, ProtocolOptions] | None = None,
        protocols: Mapping[str, TransferProtocol] | None = None,
        max_concurrent: int = 4,
        plugins: pluggy.PluginManager | None = None,
        plugin_registry: PluginRegistry | None = None,
        stream_cutoff: int = DEFAULT_CUTOFF,
        stripe_size: int = DEFAULT_STRIPE_SIZE,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._options = {scheme: dict(opts) for scheme, opts in (protocol_options or {}).items()}
        self._protocols: dict[str, TransferProtocol] = {}
        self._given: dict[str, TransferProtocol] = dict(protocols or {})
        self._max_concurrent = max_concurrent
        self._limiter: anyio.CapacityLimiter | None = None
        self._pm = plugins if plugins is not None else plugin_manager()
        self._registry = plugin_registry if plugin_registry is not None else registry()
        #: Sources with at least this much left to read may be read as parallel streams.
        self.stream_cutoff = stream_cutoff
        self.stripe_size = stripe_size

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every protocol instance (and its pooled connections)."""
        protocols = list({id(p): p for p in self._protocols.values()}.values())
        self._protocols.clear()
        with anyio.CancelScope(shield=True):
            for protocol in protocols:
                try:
                    await protocol.aclose()
                except Exception:  # closing must not hide the transfer's own outcome
                    log.warning("closing protocol %s failed", type(protocol).__name__, exc_info=True)

    def protocol(self, location: Location) -> TransferProtocol:
        """The protocol instance serving ``location``'s scheme (loaded on first use)."""
        scheme = location.scheme
        existing = self._given.get(scheme) or self._protocols.get(scheme)
        if existing is not None:
            return existing
        factory = self._registry.load(PROTOCOLS, scheme)
        if not (isinstance(factory, type) and issubclass(factory, TransferProtocol)):
            raise PluginError(
                f"protocol plugin {scheme!r} is {factory!r}, not a TransferProtocol subclass"
            )
        instance = factory(self._options.get(scheme, {}))
        self._protocols[scheme] = instance
        return instance

    async def transfer(
        self, request: TransferRequest, *, on_progress: ProgressCallback | None = None
    ) -> TransferResult:
        """Run ``request`` to its end and return the result.

        A failed transfer returns a result with status ``failed`` and the error's message;
        cancellation propagates after the ``quorus_transfer_finished`` hook has seen it.
        """
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._max_concurrent)
        async with self._limiter:
            return await self._run(request, on_progress)

    async def transfer_many(
        self,
        requests: Iterable[TransferRequest],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> list[TransferResult]:
        """Run several transfers concurrently (bounded by ``max_concurrent``), results in order."""
        items = list(requests)
        results: list[TransferResult | None] = [None] * len(items)

        async def run(index: int, request: TransferRequest) -> None:
            results[index] = await self.transfer(request, on_progress=on_progress)

        async with anyio.create_task_group() as tg:
            for index, request in enumerate(items):
                tg.start_soon(run, index, request)
        return [result for result in results if result is not None]

    # --- one transfer, all attempts ------------------------------------------------------

    async def _run(
        self, request: TransferRequest, on_progress: ProgressCallback | None
    ) -> TransferResult:
        started = anyio.current_time()

        def emit(progress: TransferProgress) -> None:
            if on_progress is not None:
                on_progress(progress)
            self._notify("quorus_transfer_progress", request=request, progress=progress)

        tracker = ProgressTracker(None, emit)
        attempt = 0

        def result(status: TransferStatus, outcome: _Outcome | None = None,
                   error: BaseException | None = None) -> TransferResult:
            return TransferResult(
                request_id=request.request_id,
                status=status,
                source=request.source.redacted(),
                destination=request.destination.redacted(),
                bytes=outcome.size if outcome else tracker.bytes_done,
                bytes_transferred=outcome.bytes_transferred if outcome else 0,
                sha256=outcome.sha256 if outcome else None,
                seconds=anyio.current_time() - started,
                attempts=attempt,
                resumed_from=outcome.resumed_from if outcome else 0,
                error=str(error) if error is not None else None,
                error_type=type(error).__name__ if error is not None else None,
            )

        try:
            while True:
                attempt += 1
                try:
                    with anyio.fail_after(request.attempt_timeout):
                        outcome = await self._attempt(request, attempt, tracker)
                except TimeoutError:
                    error: QuorusError = TransientError(
                        f"attempt {attempt} timed out after {request.attempt_timeout:g} s"
                    )
                except TransferError as exc:
                    error = exc
                except QuorusError as exc:  # configuration or plugin problems: never retried
                    error = exc
                except Exception as exc:
                    # A plugin raised something outside the Quorus family: contain it, keep
                    # the traceback in the log, and fail this transfer only.
                    log.exception("unexpected error in attempt %d of %s", attempt, request.source)
                    error = TransferError(f"unexpected error: {type(exc).__name__}: {exc}")
                else:
                    final = result(outcome.status, outcome)
                    self._finished(request, final)
                    return final
                retryable = isinstance(error, TransferError) and error.retryable
                if not retryable or attempt >= request.retry.max_attempts:
                    final = result(TransferStatus.FAILED, error=error)
                    self._finished(request, final)
                    return final
                retry_after = error.retry_after if isinstance(error, TransferError) else None
                delay = request.retry.delay(attempt, retry_after)
                self._notify(
                    "quorus_transfer_retrying",
                    request=request, attempt=attempt, error=error, delay=delay,
                )
                await anyio.sleep(delay)
        except anyio.get_cancelled_exc_class():
            self._finished(request, result(TransferStatus.CANCELLED))
            raise

    def _notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call a hook; a plugin that raises is logged and never changes the transfer."""
        try:
            getattr(self._pm.hook, hook_name)(**kwargs)
        except Exception:
            log.exception("a %s hook implementation raised; ignored", hook_name)

    def _finished(self, request: TransferRequest, result: TransferResult) -> None:
        labels = {"status": str(result.status), "scheme": request.source.scheme}
        metrics = (
            ("transfer.count", "counter", 1.0),
            ("transfer.bytes", "counter", float(result.bytes_transferred)),
            ("transfer.duration_seconds", "histogram", result.seconds),
        )
        for name, kind, value in metrics:
            self._notify("quorus_metric", name=name, kind=kind, value=value, labels=labels)
        self._notify("quorus_transfer_finished", request=request, result=result)

    # --- one attempt ---------------------------------------------------------------------

    async def _attempt(
        self, request: TransferRequest, attempt: int, tracker: ProgressTracker
    ) -> _Outcome:
        src = self.protocol(request.source)
        dst = self.protocol(request.destination)
        src.check_location(request.source)
        dst.check_location(request.destination)
        info = await src.stat(request.source)
        if info.is_dir:
            raise NotAFileError(f"source {request.source} is a directory, not a file")
        if info.size is not None and request.size is not None:
            request.size.check(info.size, f"source {request.source}")

        existing = await resume.stat_or_none(dst, request.destination)
        if existing is not None:
            if existing.is_dir:
                raise NotAFileError(
                    f"destination {request.destination} is a directory: "
                    "give the path of the file to write"
                )
            if request.overwrite is OverwritePolicy.FAIL:
                raise DestinationExistsError(
                    f"destination {request.destination} exists (overwrite policy 'fail')"
                )
            if request.overwrite is OverwritePolicy.SKIP_SAME:
                skipped = await self._skip_if_same(request, src, dst, existing)
                if skipped is not None:
                    return skipped

        if request.create_directories:
            # Protocols without directories (plain HTTP) create paths on write.
            with contextlib.suppress(UnsupportedOperationError):
                await dst.makedirs(request.destination.parent)

        dst_caps = dst.capabilities(request.destination)
        if not dst_caps.rename:
            return await self._move(request, src, dst, info, None, attempt, tracker)
        partial = resume.PartialFile.beside(request.destination)
        # Held for the whole attempt: two transfers to one destination must never write the
        # same partial file (the second is told the destination is busy, and may retry).
        async with dst.lock(partial.record):
            return await self._move(request, src, dst, info, partial, attempt, tracker)

    async def _move(
        self,
        request: TransferRequest,
        src: TransferProtocol,
        dst: TransferProtocol,
        info: FileInfo,
        partial: resume.PartialFile | None,
        attempt: int,
        tracker: ProgressTracker,
    ) -> _Outcome:
        """Stream, verify and place the data (into ``partial`` and then renamed, if given)."""
        if partial is not None:
            offset, hasher = await resume.resume_point(request, src, dst, info, partial, tracker)
        else:
            offset, hasher = 0, hashlib.sha256()
        target = partial.data if partial is not None else request.destination

        self._notify("quorus_transfer_started", request=request, attempt=attempt, offset=offset)
        limiter = RateLimiter(request.bandwidth_limit) if request.bandwidth_limit else None
        async with await open_source(
            src, request.source, info, offset, streams=request.streams,
            cutoff=self.stream_cutoff, stripe_size=self.stripe_size,
        ) as reader:
            current = reader.info
            if offset and resume.source_changed(info, current):
                raise SourceChangedError(
                    f"source {request.source} changed since the partial file was written"
                )
            expected_size = current.size if current.size is not None else info.size
            tracker.reset(offset, expected_size)
            async with await dst.open_write(
                target, offset, size_hint=expected_size, mode=request.mode
            ) as writer:
                moved = await pump(
                    reader, hasher, writer=writer, on_chunk=tracker.advance, limiter=limiter
                )
                size = offset + moved
                digest = hasher.hexdigest()
                try:
                    self._verify(request, size, digest, expected_size, resumed=offset > 0)
                except VerificationError:
                    await writer.abort()
                    if partial is not None:
                        await resume.discard(dst, partial)
                    raise
                await writer.commit()
        if partial is not None:
            await dst.rename(
                partial.data,
                request.destination,
                replace=request.overwrite is not OverwritePolicy.FAIL,
            )
            await resume.drop_record(dst, partial)
        tracker.finish()
        return _Outcome(TransferStatus.COMPLETED, size, digest, moved, offset)

    def _verify(
        self,
        request: TransferRequest,
        size: int,
        digest: str,
        expected_size: int | None,
        *,
        resumed: bool,
    ) -> None:
        if expected_size is not None and size != expected_size:
            raise SourceChangedError(
                f"source {request.source} ended at {size} bytes but announced {expected_size}"
            )
        if request.size is not None:
            request.size.check(size, f"source {request.source}")
        if request.checksum is not None and digest != request.checksum.hexdigest:
            raise ChecksumMismatchError(
                f"checksum mismatch for {request.source}: expected sha256:"
                f"{request.checksum.hexdigest}, got sha256:{digest}",
                # A mismatch after resuming may come from a damaged partial file: one more
                # attempt from the start can tell.
                retryable=resumed,
            )

    async def _skip_if_same(
        self,
        request: TransferRequest,
        src: TransferProtocol,
        dst: TransferProtocol,
        existing: FileInfo,
    ) -> _Outcome | None:
        """With policy ``skip-same``: an outcome if the destination already holds the data."""
        have = await _digest(dst, request.destination)
        if request.checksum is not None:
            want = request.checksum.hexdigest
        else:
            want = await _digest(src, request.source)
        if have != want:
            return None
        return _Outcome(TransferStatus.SKIPPED, existing.size or 0, have, 0, 0)


async def _digest(protocol: TransferProtocol, location: Location) -> str:
    hasher = hashlib.sha256()
    async with await protocol.open_read(location) as stream:
        await pump(stream, hasher)
    return hasher.hexdigest()


__all__ = ["TransferEngine"]
