"""The ``cleanup`` action: delete the files under a directory (a local path or a URI of any
protocol that can list and delete) last modified more than ``retentionDays`` days ago.

Local trees are walked through directory file descriptors without following symbolic links,
so a link (or a directory swapped for a link during the walk) never leads outside the
target; links themselves are left alone. The target directory itself is never deleted.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from quorus.core.errors import NotFoundError, TransferError
from quorus.core.protocol import TransferProtocol
from quorus.core.units import format_size
from quorus.core.uri import Location
from quorus.workflow.actions.base import (
    ActionContext,
    ActionError,
    is_template,
    parse_target,
    show_location,
    spec_number,
    spec_text,
)
from quorus.workflow.summary import ActionOutcome, ExecutionSummary

DAY = 86400.0
#: Deeper trees are not descended into (and reported): a guard against loops that a remote
#: protocol's listing could present.
MAX_DEPTH = 256
_MAX_ERRORS_SHOWN = 5


@dataclass(slots=True)
class _Tally:
    """What a sweep found and did."""

    removed: int = 0
    bytes: int = 0
    links: int = 0
    undated: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    kind: str  # "file", "dir", "link" or "other"
    size: int
    mtime: float


def _scan(dir_fd: int) -> list[_Entry]:
    entries = []
    with os.scandir(dir_fd) as it:
        for entry in it:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            kind = ("link" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode)
                    else "file" if stat.S_ISREG(st.st_mode) else "other")
            entries.append(_Entry(entry.name, kind, st.st_size, st.st_mtime))
    return sorted(entries, key=lambda e: e.name)


def _open_dir(name: str, dir_fd: int | None) -> int:
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                   dir_fd=dir_fd)


def _unlink(names: list[str], dir_fd: int, shown: str) -> tuple[set[str], list[str]]:
    """Unlink ``names`` in the directory: the names removed, and why others were not."""
    removed, errors = set(), []
    for name in names:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            continue  # gone already: someone else removed it
        except OSError as exc:
            errors.append(f"{shown}/{name}: {exc.strerror or exc}")
        else:
            removed.add(name)
    return removed, errors


async def _sweep_local(root: str, cutoff: float, dry_run: bool) -> _Tally:
    tally = _Tally()
    try:
        fd = await anyio.to_thread.run_sync(_open_dir, root, None)
    except FileNotFoundError:
        raise ActionError(f"cleanup: target {root} does not exist") from None
    except NotADirectoryError:
        raise ActionError(f"cleanup: target {root} is not a directory: give the directory "
                          "whose old files should go") from None
    except OSError as exc:
        raise ActionError(f"cleanup: cannot open {root}: {exc.strerror or exc}") from None
    await _sweep_local_dir(fd, root.rstrip("/"), cutoff, dry_run, tally, 0)
    return tally


async def _sweep_local_dir(fd: int, shown: str, cutoff: float, dry_run: bool, tally: _Tally,
                           depth: int) -> None:
    """Sweep the directory open as ``fd`` (and close it)."""
    try:
        try:
            entries = await anyio.to_thread.run_sync(_scan, fd)
        except OSError as exc:
            tally.errors.append(f"{shown}: cannot list: {exc.strerror or exc}")
            return
        old = [e for e in entries if e.kind == "file" and e.mtime < cutoff]
        tally.links += sum(e.kind == "link" for e in entries)
        if not dry_run and old:
            removed, failed = await anyio.to_thread.run_sync(
                _unlink, [e.name for e in old], fd, shown)
            tally.errors.extend(failed)
            old = [e for e in old if e.name in removed]
        tally.removed += len(old)
        tally.bytes += sum(e.size for e in old)
        for entry in (e for e in entries if e.kind == "dir"):
            child = f"{shown}/{entry.name}"
            if depth + 1 >= MAX_DEPTH:
                tally.errors.append(f"{child}: deeper than {MAX_DEPTH} levels, not swept")
                continue
            try:
                child_fd = await anyio.to_thread.run_sync(_open_dir, entry.name, fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                # ELOOP: the directory became a symbolic link since it was listed.
                tally.errors.append(f"{child}: cannot open: {exc.strerror or exc}")
                continue
            await _sweep_local_dir(child_fd, child, cutoff, dry_run, tally, depth + 1)
    finally:
        os.close(fd)


async def _sweep_remote(protocol: TransferProtocol, target: Location, cutoff: float,
                        dry_run: bool) -> _Tally:
    shown = show_location(target)
    capabilities = protocol.capabilities(target)
    if not capabilities.listing or not (capabilities.delete or dry_run):
        raise ActionError(f"cleanup: the {target.scheme} protocol cannot list and delete "
                          f"files, so {shown} cannot be cleaned up")
    try:
        info = await protocol.stat(target)
    except NotFoundError:
        raise ActionError(f"cleanup: target {shown} does not exist") from None
    except TransferError as exc:
        raise ActionError(f"cleanup: cannot stat {shown}: {exc}") from None
    if not info.is_dir:
        raise ActionError(f"cleanup: target {shown} is not a directory: give the directory "
                          "whose old files should go")
    tally = _Tally()
    await _sweep_remote_dir(protocol, target, cutoff, dry_run, tally, 0)
    return tally


async def _sweep_remote_dir(protocol: TransferProtocol, directory: Location, cutoff: float,
                            dry_run: bool, tally: _Tally, depth: int) -> None:
    parent = directory.path.rstrip("/") or "/"
    try:
        entries = await protocol.list(directory)
    except TransferError as exc:
        tally.errors.append(f"{show_location(directory)}: cannot list: {exc}")
        return
    for info in entries:
        child = info.location
        # Only direct children: a listing that names anything else is not followed.
        if posixpath.dirname(child.path.rstrip("/")) != parent or child.path.rstrip("/") == parent:
            continue
        if info.is_dir:
            if depth + 1 >= MAX_DEPTH:
                tally.errors.append(f"{show_location(child)}: deeper than {MAX_DEPTH} levels, "
                                    "not swept")
            else:
                await _sweep_remote_dir(protocol, child, cutoff, dry_run, tally, depth + 1)
        elif info.mtime is None:
            tally.undated += 1
        elif info.mtime < cutoff:
            if not dry_run:
                try:
                    await protocol.delete(child)
                except NotFoundError:
                    continue
                except TransferError as exc:
                    tally.errors.append(f"{show_location(child)}: {exc}")
                    continue
            tally.removed += 1
            tally.bytes += info.size or 0


def _inside(target: Location, root: Location) -> bool:
    if (target.scheme, target.host, target.port) != (root.scheme, root.host, root.port):
        return False
    base = root.path.rstrip("/")
    return target.path == root.path or target.path.startswith(base + "/")


def check_allowed(target: Location, allowed_roots: tuple[str, ...]) -> Location:
    """``target`` with a local path resolved; refuses ``/`` and, when ``allowed_roots`` are
    given, anything outside them."""
    if target.scheme == "file":
        target = target.with_path(os.path.realpath(target.path))
    if target.path.rstrip("/") == "":
        raise ActionError(f"cleanup: refusing to clean up the root {show_location(target)}: "
                          "name the directory that holds the old files")
    if not allowed_roots:
        return target
    roots = [parse_target(root, "cleanup") for root in allowed_roots]
    roots = [r.with_path(os.path.realpath(r.path)) if r.scheme == "file" else r for r in roots]
    if not any(_inside(target, root) for root in roots):
        raise ActionError(
            f"cleanup: target {show_location(target)} is outside the allowed cleanup roots "
            f"({', '.join(show_location(r) for r in roots)}); add it to cleanup.allowedRoots"
        )
    return target


def _describe(tally: _Tally, days: float, shown: str, dry_run: bool) -> str:
    verb = "would remove" if dry_run else "removed"
    noun = "file" if tally.removed == 1 else "files"
    parts = [f"{verb} {tally.removed} {noun} ({format_size(tally.bytes)}) older than "
             f"{days:g} days under {shown}"]
    if tally.links:
        parts.append(f"left {tally.links} symbolic links alone")
    if tally.undated:
        parts.append(f"kept {tally.undated} files whose age the protocol does not report")
    if tally.errors:
        shown_errors = "; ".join(tally.errors[:_MAX_ERRORS_SHOWN])
        more = len(tally.errors) - _MAX_ERRORS_SHOWN
        parts.append(f"{len(tally.errors)} problems: {shown_errors}"
                     + (f" (and {more} more)" if more > 0 else ""))
    return "; ".join(parts)


class CleanupAction:
    """``{action: cleanup, target: PATH_OR_URI, retentionDays: DAYS}``."""

    name = "cleanup"

    def validate(self, spec: Mapping[str, Any]) -> list[str]:
        problems = []
        target = spec.get("target")
        if not isinstance(target, str) or not target:
            problems.append("cleanup: 'target' is required: the directory whose old files go")
        elif not is_template(target):
            try:
                location = parse_target(target, self.name)
                if location.path.rstrip("/") == "":
                    problems.append(f"cleanup: refusing target {show_location(location)!r}: "
                                    "name the directory that holds the old files, not a root")
            except ActionError as exc:
                problems.append(str(exc))
        days = spec.get("retentionDays")
        if days is None:
            problems.append("cleanup: 'retentionDays' is required (files older than it go)")
        elif not is_template(days):
            try:
                if spec_number(days, "retentionDays", self.name) < 0:
                    problems.append(f"cleanup: 'retentionDays' must not be negative, not {days}")
            except ActionError as exc:
                problems.append(str(exc))
        return problems

    async def __call__(
        self, spec: Mapping[str, Any], summary: ExecutionSummary, context: ActionContext
    ) -> ActionOutcome:
        problems = self.validate(spec)
        if problems:
            raise ActionError("; ".join(problems))
        days = spec_number(spec["retentionDays"], "retentionDays", self.name)
        target = parse_target(spec_text(spec, "target", self.name), self.name)
        target = check_allowed(target, context.settings.allowed_cleanup_roots)
        shown = show_location(target)
        cutoff = context.now - days * DAY
        if target.scheme == "file":
            # The file protocol's listing follows links; the local sweep never does.
            tally = await _sweep_local(target.path, cutoff, context.dry_run)
        else:
            async with context.protocol(target.scheme) as protocol:
                tally = await _sweep_remote(protocol, target, cutoff, context.dry_run)
        return ActionOutcome(self.name, shown, not tally.errors,
                             _describe(tally, days, shown, context.dry_run))


__all__ = ["DAY", "CleanupAction", "check_allowed"]
