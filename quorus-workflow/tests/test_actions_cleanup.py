"""The cleanup action on real directory trees (ages set with os.utime) and through the
memory protocol by URI: only old files go, links are never followed, roots are refused."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from quorus.core.protocols.memory import MemoryStore, memory_store
from quorus.core.testing.fixtures import anyio_backend
from quorus.workflow.actions import (
    ActionContext,
    ActionSettings,
    CleanupAction,
    run_actions,
    validate_action,
)
from quorus.workflow.actions.cleanup import DAY
from quorus.workflow.summary import ActionOutcome, ExecutionStatus, ExecutionSummary

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio

NOW = 1_750_000_000.0
SUMMARY = ExecutionSummary("e-1", "nightly", ExecutionStatus.COMPLETED)


def write(path: Path, size: int, age_days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - age_days * DAY, NOW - age_days * DAY))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """A backup directory with old and new files at two depths, and links to an old file
    and an old directory outside it."""
    outside = tmp_path / "outside"
    paths = {
        "old": write(tmp_path / "backup" / "old.tar", 100, 40),
        "new": write(tmp_path / "backup" / "new.tar", 10, 1),
        "deep_old": write(tmp_path / "backup" / "2024" / "01" / "old.bin", 1000, 400),
        "deep_new": write(tmp_path / "backup" / "2024" / "01" / "new.bin", 5, 29),
        "outside_file": write(outside / "precious.db", 7, 365),
        "outside_dir_file": write(outside / "dir" / "precious.log", 7, 365),
    }
    backup = tmp_path / "backup"
    (backup / "link-to-file").symlink_to(paths["outside_file"])
    (backup / "link-to-dir").symlink_to(outside / "dir", target_is_directory=True)
    paths["backup"] = backup
    return paths


async def cleanup(target: str, days: Any = 30, *, dry_run: bool = False,
                  roots: tuple[str, ...] = ()) -> ActionOutcome:
    context = ActionContext(settings=ActionSettings(allowed_cleanup_roots=roots),
                            dry_run=dry_run, now=NOW)
    [outcome] = await run_actions(
        [{"action": "cleanup", "target": target, "retentionDays": days}], SUMMARY, context)
    return outcome


@pytest.mark.anyio
async def test_only_files_older_than_the_retention_go_in_every_directory(
    tree: dict[str, Path],
) -> None:
    outcome = await cleanup(str(tree["backup"]))
    assert outcome.ok, outcome.detail
    assert not tree["old"].exists() and not tree["deep_old"].exists()
    assert tree["new"].exists() and tree["deep_new"].exists()
    assert (tree["backup"] / "2024" / "01").is_dir()
    assert outcome.detail == (f"removed 2 files (1.1 KiB) older than 30 days under "
                              f"{tree['backup']}; left 2 symbolic links alone")


@pytest.mark.anyio
async def test_links_out_of_the_target_are_not_followed(tree: dict[str, Path]) -> None:
    outcome = await cleanup(str(tree["backup"]), 0)
    assert outcome.ok, outcome.detail
    assert tree["outside_file"].exists() and tree["outside_dir_file"].exists()
    assert (tree["backup"] / "link-to-file").is_symlink()
    assert (tree["backup"] / "link-to-dir").is_symlink()
    assert tree["backup"].is_dir()
    assert sorted(p.name for p in tree["backup"].rglob("*") if p.is_file()
                  and not p.is_symlink()) == []


@pytest.mark.anyio
async def test_a_dry_run_deletes_nothing_and_reports_what_would_go(
    tree: dict[str, Path],
) -> None:
    before = sorted(tree["backup"].rglob("*"))
    outcome = await cleanup(str(tree["backup"]), "30", dry_run=True)
    assert outcome.ok
    assert outcome.detail.startswith("would remove 2 files (1.1 KiB) older than 30 days")
    assert sorted(tree["backup"].rglob("*")) == before


@pytest.mark.anyio
async def test_a_file_uri_target_is_swept_like_its_path(tree: dict[str, Path]) -> None:
    outcome = await cleanup(f"file://{tree['backup']}", 30.5)
    assert outcome.ok, outcome.detail
    assert outcome.target == str(tree["backup"])
    assert not tree["old"].exists() and tree["new"].exists()


@pytest.mark.anyio
@pytest.mark.parametrize("target", ["/", "file:///", "memory://store/"])
async def test_a_root_target_is_refused(target: str) -> None:
    outcome = await cleanup(target)
    assert not outcome.ok
    assert "refusing" in outcome.detail and "not a root" in outcome.detail


@pytest.mark.anyio
async def test_a_link_to_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sneaky").symlink_to("/")
    outcome = await cleanup(str(tmp_path / "sneaky"))
    assert not outcome.ok
    assert "refusing to clean up the root /" in outcome.detail


@pytest.mark.anyio
async def test_targets_outside_the_allowed_roots_are_refused(tree: dict[str, Path]) -> None:
    allowed = str(tree["backup"].parent / "elsewhere")
    refused = await cleanup(str(tree["backup"]), roots=(allowed,))
    assert not refused.ok
    assert "outside the allowed cleanup roots" in refused.detail
    assert tree["old"].exists()
    inside = await cleanup(str(tree["backup"] / "2024"), roots=(allowed, str(tree["backup"])))
    assert inside.ok, inside.detail
    assert not tree["deep_old"].exists() and tree["old"].exists()


@pytest.mark.anyio
async def test_a_missing_or_file_target_fails_saying_so(tree: dict[str, Path]) -> None:
    missing = await cleanup(str(tree["backup"] / "nope"))
    assert not missing.ok and "does not exist" in missing.detail
    a_file = await cleanup(str(tree["new"]))
    assert not a_file.ok and "is not a directory" in a_file.detail
    assert tree["new"].exists()


@pytest.fixture
def store() -> tuple[str, MemoryStore]:
    name = f"cleanup-{uuid.uuid4().hex[:8]}"
    store = memory_store(name)
    for path, age in [("/backup/old.tar", 40), ("/backup/new.tar", 2),
                      ("/backup/day/old.tar", 31), ("/other/old.tar", 99)]:
        store.put(path, b"y" * 50)
        store.files[path].mtime = NOW - age * DAY
    return name, store


@pytest.mark.anyio
async def test_a_memory_uri_target_is_swept_through_its_protocol(
    store: tuple[str, MemoryStore],
) -> None:
    name, files = store
    outcome = await cleanup(f"memory://{name}/backup", 30)
    assert outcome.ok, outcome.detail
    assert sorted(files.files) == ["/backup/new.tar", "/other/old.tar"]
    assert outcome.detail == (f"removed 2 files (100 B) older than 30 days under "
                              f"memory://{name}/backup")


@pytest.mark.anyio
async def test_a_dry_run_through_a_protocol_deletes_nothing(
    store: tuple[str, MemoryStore],
) -> None:
    name, files = store
    outcome = await cleanup(f"memory://{name}/backup", 30, dry_run=True,
                            roots=(f"memory://{name}/backup",))
    assert outcome.ok and outcome.detail.startswith("would remove 2 files (100 B)")
    assert len(files.files) == 4


@pytest.mark.anyio
async def test_an_uninstalled_protocol_fails_with_the_install_hint() -> None:
    outcome = await cleanup("nosuchproto://backup.internal/srv/backup")
    assert not outcome.ok
    assert "no protocol for scheme 'nosuchproto'" in outcome.detail


@pytest.mark.parametrize(("spec", "problem"), [
    ({"action": "cleanup", "retentionDays": 3}, "'target' is required"),
    ({"action": "cleanup", "target": "/backup"}, "'retentionDays' is required"),
    ({"action": "cleanup", "target": "/backup", "retentionDays": -1}, "must not be negative"),
    ({"action": "cleanup", "target": "/backup", "retentionDays": "a week"}, "must be a number"),
    ({"action": "cleanup", "target": "/backup", "retentionDays": True}, "must be a number"),
    ({"action": "cleanup", "target": "/backup", "retentionDays": "nan"}, "must be a number"),
    ({"action": "cleanup", "target": "sftp://u:pw@h/", "retentionDays": 1},
     "refusing target 'sftp://***@h/'"),
    ({"action": "cleanup", "target": "/", "retentionDays": 3}, "refusing target '/'"),
    ({"action": "cleanup", "target": "${BACKUP_ROOT}", "retentionDays": "${DAYS}"}, None),
    ({"action": "cleanup", "target": "/backup", "retentionDays": "30"}, None),
])
def test_validate_cleanup(spec: dict[str, Any], problem: str | None) -> None:
    problems = validate_action(spec)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems
    assert CleanupAction().validate(spec) == problems
