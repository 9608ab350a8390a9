"""End to end through the installed ``quorus`` command: the plugin is used as an operator
would use it, with nothing registered at run time; a disabled or broken plugin is reported
and does not take the other protocols down."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from quorus.core.testing import payload_bytes
from quorus_example_sqlite import require_token

#: The console script installed beside the interpreter running the tests.
QUORUS = Path(sys.executable).with_name("quorus")
#: Every subprocess gets this long; a hung CLI fails the test instead of the whole run.
TIMEOUT = 120


def run_quorus(
    *args: str, cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("QUORUS_DISABLE_PLUGINS", "QUORUS_SQLITE_ROOT", "PYTHONPATH")}
    env.update(extra_env or {})
    return subprocess.run(
        [str(QUORUS), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plugins_json(cwd: Path, extra_env: dict[str, str] | None = None) -> dict[tuple[str, str], Any]:
    done = run_quorus("plugins", "--json", cwd=cwd, extra_env=extra_env)
    assert done.returncode == 0, done.stderr
    return {(p["group"], p["name"]): p for p in json.loads(done.stdout)}


def test_console_script_is_installed() -> None:
    assert QUORUS.is_file(), f"{QUORUS} is missing: install quorus-core into this environment"


def test_round_trip_through_sqlite(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(payload_bytes(3 * 1024 * 1024 + 517, seed=11))
    digest = sha256_file(source)
    root = tmp_path / "stores"

    up = run_quorus(
        "transfer", str(source), "sqlite://store/dir/file.bin", "--json",
        "--checksum", f"sha256:{digest}", "-o", f"sqlite.root={root}", cwd=tmp_path,
    )
    assert up.returncode == 0, up.stderr
    up_result = json.loads(up.stdout)
    assert up_result["status"] == "completed"
    assert up_result["sha256"] == digest
    assert up_result["destination"] == "sqlite://store/dir/file.bin"
    assert (root / "store.sqlite3").is_file()

    back = tmp_path / "back" / "file.bin"
    down = run_quorus(
        "transfer", "sqlite://store/dir/file.bin", str(back), "--json",
        "-o", f"sqlite.root={root}", cwd=tmp_path,
    )
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["sha256"] == digest
    assert sha256_file(back) == digest


def test_default_root_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    source = tmp_path / "note.txt"
    source.write_text("kept in ./quorus-sqlite\n")
    done = run_quorus("transfer", str(source), "sqlite://notes/note.txt", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "quorus-sqlite" / "notes.sqlite3").is_file()


def test_missing_source_fails_with_exit_code_1(tmp_path: Path) -> None:
    done = run_quorus(
        "transfer", "sqlite://store/absent.bin", str(tmp_path / "out.bin"),
        "-o", f"sqlite.root={tmp_path}", cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "no such store" in done.stderr
    assert not (tmp_path / "out.bin").exists()


def test_wrong_token_fails_and_never_shows_the_token(tmp_path: Path) -> None:
    require_token(tmp_path / "guarded.sqlite3", "the-real-token")
    source = tmp_path / "in.txt"
    source.write_text("guarded\n")
    done = run_quorus(
        "-vv", "transfer", str(source), "sqlite://guarded/in.txt", "--json",
        "-o", f"sqlite.root={tmp_path}", "-o", "sqlite.token=env:GUARD_TOKEN",
        cwd=tmp_path, extra_env={"GUARD_TOKEN": "a-wrong-token"},
    )
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["error_type"] == "AuthenticationError"
    assert result["attempts"] == 1  # authentication failures are not retried
    for secret in ("a-wrong-token", "the-real-token"):
        assert secret not in done.stdout + done.stderr


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("x")
    done = run_quorus(
        "transfer", str(source), "sqlite://s/in.txt", "-o", "sqlite.rooot=/tmp", cwd=tmp_path
    )
    assert done.returncode == 2
    assert "unknown sqlite option(s) 'rooot'" in done.stderr


# --- disabling and isolation -----------------------------------------------------------------


@pytest.mark.parametrize("switch", ["sqlite", "quorus.protocols:sqlite", "memory, sqlite"])
def test_disabled_plugin_is_reported_and_refused(tmp_path: Path, switch: str) -> None:
    env = {"QUORUS_DISABLE_PLUGINS": switch}
    listed = plugins_json(tmp_path, env)
    assert listed["quorus.protocols", "sqlite"]["status"] == "disabled"
    assert "QUORUS_DISABLE_PLUGINS" in listed["quorus.protocols", "sqlite"]["error"]
    assert listed["quorus.protocols", "file"]["status"] == "loaded"

    source = tmp_path / "in.txt"
    source.write_text("x")
    done = run_quorus("transfer", str(source), "sqlite://s/in.txt", cwd=tmp_path, extra_env=env)
    assert done.returncode == 2
    assert "protocol 'sqlite' is disabled by QUORUS_DISABLE_PLUGINS" in done.stderr
    assert not (tmp_path / "quorus-sqlite").exists()


@pytest.fixture
def broken_plugin_path(tmp_path: Path) -> Path:
    """A directory that, on PYTHONPATH, installs a protocol plugin whose module cannot import.

    A ``*.dist-info`` directory is all ``importlib.metadata`` needs to find a distribution and
    its entry points, so no virtualenv and no pip are involved.
    """
    site = tmp_path / "broken-site"
    dist_info = site / "quorus_broken_example-0.1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: quorus-broken-example\nVersion: 0.1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[quorus.protocols]\nbroken = quorus_broken_example:BrokenProtocol\n"
    )
    (site / "quorus_broken_example.py").write_text(textwrap.dedent("""
        raise ImportError("quorus_broken_example needs libbroken, which is not installed")
    """))
    return site


def test_broken_plugin_is_listed_as_failed(tmp_path: Path, broken_plugin_path: Path) -> None:
    listed = plugins_json(tmp_path, {"PYTHONPATH": str(broken_plugin_path)})
    broken = listed["quorus.protocols", "broken"]
    assert broken["status"] == "failed"
    assert broken["distribution"] == "quorus-broken-example"
    assert "ImportError" in broken["error"]
    assert "needs libbroken" in broken["error"]
    assert listed["quorus.protocols", "file"]["status"] == "loaded"
    assert listed["quorus.protocols", "sqlite"]["status"] == "loaded"


def test_broken_plugin_does_not_stop_other_transfers(
    tmp_path: Path, broken_plugin_path: Path
) -> None:
    env = {"PYTHONPATH": str(broken_plugin_path)}
    source = tmp_path / "in.bin"
    source.write_bytes(payload_bytes(200_000, seed=3))

    local = run_quorus("transfer", str(source), str(tmp_path / "copy.bin"), "--json",
                       cwd=tmp_path, extra_env=env)
    assert local.returncode == 0, local.stderr
    assert sha256_file(tmp_path / "copy.bin") == sha256_file(source)

    to_sqlite = run_quorus("transfer", str(source), "sqlite://s/in.bin", "--json",
                           cwd=tmp_path, extra_env=env)
    assert to_sqlite.returncode == 0, to_sqlite.stderr

    to_broken = run_quorus("transfer", str(source), "broken://host/in.bin",
                           cwd=tmp_path, extra_env=env)
    assert to_broken.returncode == 2
    assert "protocol 'broken' from quorus-broken-example 0.1.0 failed to load" in to_broken.stderr
    assert "needs libbroken" in to_broken.stderr
