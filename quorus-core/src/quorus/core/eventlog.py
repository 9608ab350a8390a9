"""The built-in ``log`` hook plugin: transfer lifecycle events as log records.

It registers through the ``quorus.plugins`` entry point like any third-party hook plugin, so
``QUORUS_DISABLE_PLUGINS=log`` silences it. Records go to the ``quorus.transfer`` logger;
locations are always redacted.
"""

from __future__ import annotations

import logging

from quorus.core.engine.model import TransferRequest, TransferResult, TransferStatus
from quorus.core.errors import TransferError
from quorus.core.hooks import hookimpl
from quorus.core.units import format_size

log = logging.getLogger("quorus.transfer")


@hookimpl
def quorus_transfer_started(request: TransferRequest, attempt: int, offset: int) -> None:
    resumed = f", resuming at byte {offset}" if offset else ""
    log.info("transfer %s: attempt %d %s -> %s%s", request.request_id[:8], attempt,
             request.source, request.destination, resumed)


@hookimpl
def quorus_transfer_retrying(
    request: TransferRequest, attempt: int, error: TransferError, delay: float
) -> None:
    log.warning("transfer %s: attempt %d failed (%s); retrying in %.1f s",
                request.request_id[:8], attempt, error, delay)


@hookimpl
def quorus_transfer_finished(request: TransferRequest, result: TransferResult) -> None:
    if result.status is TransferStatus.FAILED:
        log.error("transfer %s failed after %d attempt(s): %s", request.request_id[:8],
                  result.attempts, result.error)
    else:
        log.info("transfer %s %s: %s in %.2f s, sha256:%s", request.request_id[:8],
                 result.status, format_size(result.bytes), result.seconds, result.sha256)
