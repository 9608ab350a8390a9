#!/usr/bin/env python3
"""Move files with Quorus's public Python API.

    python basic_transfer.py                     # a demo on sample files in a temporary directory
    python basic_transfer.py SRC DST [sha256:HEX]  # copy SRC to DST (paths or URIs)

The demo shows:

1. ``transfer()``: one file, with the SHA-256 it must have, a retry policy and a progress
   callback. The file appears under its final name only once it is complete and verified.
2. What a failed verification looks like: ``TransferFailedError`` carries the result, and
   nothing is left at the destination.
3. ``TransferEngine.transfer_many()``: several files at once through one engine, which keeps
   one protocol instance (and its connections) per URI scheme.

Exit status: 0 when everything went as described, 1 when a transfer failed, 2 for bad usage.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import tempfile
from pathlib import Path

import anyio
from quorus.core import (
    OverwritePolicy,
    QuorusError,
    RetryPolicy,
    TransferEngine,
    TransferFailedError,
    TransferProgress,
    TransferRequest,
    TransferResult,
    TransferStatus,
    transfer,
)

#: Retry transient failures (connection reset, server busy) twice, after 0.5 s, then 1 s.
RETRY = RetryPolicy(max_attempts=3, initial_delay=0.5, max_delay=5.0)


def print_progress(progress: TransferProgress) -> None:
    """Called by the engine a few times per second while data moves, and once at the end."""
    percent = f" ({progress.fraction:.0%})" if progress.fraction is not None else ""
    total = progress.total if progress.total is not None else "?"
    print(f"progress: {progress.bytes_done}/{total} bytes{percent}", flush=True)


def describe(result: TransferResult) -> str:
    return (
        f"{result.status}: {result.source} -> {result.destination}, {result.bytes} bytes "
        f"in {result.seconds:.3f} s, {result.attempts} attempt(s)"
    )


async def copy_one(source: str, destination: str, checksum: str | None) -> int:
    """Copy one file given on the command line."""
    try:
        result = await transfer(
            source, destination, checksum=checksum, retry=RETRY, on_progress=print_progress
        )
    except TransferFailedError as exc:
        # The result says what went wrong; error_type names the Quorus exception.
        print(f"failed: {exc.result.error_type}: {exc.result.error}", file=sys.stderr)
        return 1
    print(describe(result))
    print(f"sha256: {result.sha256}")
    return 0


async def demo(workdir: Path) -> int:
    sample = workdir / "sample.bin"
    # Some megabytes of varied bytes, so progress is reported more than once.
    sample.write_bytes(b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(131072)))
    expected = hashlib.sha256(sample.read_bytes()).hexdigest()
    print(f"sha256 expected: {expected}")

    # 1. One file, verified against the checksum the sender published.
    result = await transfer(
        str(sample),
        str(workdir / "inbox" / "sample.bin"),  # missing directories are created
        checksum=f"sha256:{expected}",
        retry=RETRY,
        on_progress=print_progress,
    )
    print(describe(result))
    print(f"sha256 moved: {result.sha256}")

    # 2. A wrong checksum: the transfer fails and the destination stays absent.
    rejected = workdir / "inbox" / "rejected.bin"
    try:
        await transfer(str(sample), str(rejected), checksum="sha256:" + "0" * 64)
    except TransferFailedError as exc:
        print(f"rejected as expected: {exc.result.error_type}; destination exists: "
              f"{rejected.exists()}")
    else:
        print("error: a transfer with a wrong checksum succeeded", file=sys.stderr)
        return 1

    # 3. Several files through one engine, at most two at a time.
    reports = []
    for index in range(3):
        report = workdir / f"report-{index}.csv"
        report.write_text(f"id,value\n{index},{index * index}\n")
        reports.append(report)
    requests = [
        TransferRequest.create(
            str(report),
            str(workdir / "archive" / report.name),
            overwrite=OverwritePolicy.SKIP_SAME,  # a rerun skips files already there
            retry=RETRY,
        )
        for report in reports
    ]
    async with TransferEngine(max_concurrent=2) as engine:
        results = await engine.transfer_many(requests)
    for batch_result in results:
        print(f"batch: {describe(batch_result)}")
    completed = sum(r.status is TransferStatus.COMPLETED for r in results)
    print(f"batch: {completed} of {len(results)} transfers completed")
    return 0 if completed == len(results) and result.sha256 == expected else 1


async def main(argv: list[str]) -> int:
    if len(argv) in (2, 3):
        return await copy_one(argv[0], argv[1], argv[2] if len(argv) == 3 else None)
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="quorus-example-") as workdir:
        return await demo(Path(workdir))


if __name__ == "__main__":
    # Quorus logs through the standard logging module (logger "quorus.transfer"): failed
    # transfers at ERROR, retries at WARNING. Label the lines so they are told apart from
    # this script's own output.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        sys.exit(anyio.run(main, sys.argv[1:]))
    except QuorusError as exc:  # a malformed URI or checksum, a protocol not installed
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
