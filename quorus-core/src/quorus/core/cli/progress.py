"""Progress display for the CLI, on stderr: a rich progress bar on a terminal, or plain lines."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import click
from quorus.core.engine import ProgressCallback, TransferProgress, TransferRequest
from quorus.core.units import format_size


@contextmanager
def progress_display(kind: str, request: TransferRequest) -> Iterator[ProgressCallback | None]:
    """Yield the ``on_progress`` callback for ``kind`` (``bar``, ``plain`` or ``none``)."""
    if kind == "none":
        yield None
        return
    if kind == "plain":
        last = [-1.0]

        def plain(p: TransferProgress) -> None:
            now = anyio.current_time()
            if now - last[0] < 1.0 and p.bytes_done != p.total:
                return
            last[0] = now
            total = format_size(p.total) if p.total is not None else "?"
            eta = f", eta {p.eta:.0f} s" if p.eta is not None else ""
            click.echo(
                f"{request.source.name}: {format_size(p.bytes_done)} / {total} "
                f"at {format_size(p.rate)}/s{eta}",
                err=True,
            )

        yield plain
        return
    # rich is imported only when a bar is drawn: it is a noticeable share of start-up time.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    console = Console(stderr=True, highlight=False)
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(request.source.name or str(request.source), total=None)

        def update(p: TransferProgress) -> None:
            bar.update(task, completed=p.bytes_done, total=p.total)

        yield update
