"""``quorus-integration-examples/basic_transfer.py`` runs and does what its output says.

It lives here because every folder directly under quorus-integration-examples/ is a
distribution of the workspace; this package's tests are the examples' tests.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

from quorus.core.testing import payload_bytes

SCRIPT = Path(__file__).resolve().parents[2] / "basic_transfer.py"
TIMEOUT = 120


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )


def test_demo_runs_all_three_parts(tmp_path: Path) -> None:
    done = run_script(cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    expected = re.search(r"^sha256 expected: ([0-9a-f]{64})$", out, re.M)
    moved = re.search(r"^sha256 moved: ([0-9a-f]{64})$", out, re.M)
    assert expected is not None, out
    assert moved is not None, out
    assert expected.group(1) == moved.group(1)
    # The progress callback ran, and its last report covers the whole file.
    progress = re.findall(r"^progress: (\d+)/(\d+) bytes", out, re.M)
    assert progress, out
    assert progress[-1][0] == progress[-1][1] == str(4 * 1024 * 1024)
    assert "rejected as expected: ChecksumMismatchError; destination exists: False" in out
    assert len(re.findall(r"^batch: completed: ", out, re.M)) == 3
    assert "batch: 3 of 3 transfers completed" in out


def test_copies_a_file_given_on_the_command_line(tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(payload_bytes(300_000, seed=5))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    destination = tmp_path / "out" / "in.bin"
    done = run_script(str(source), str(destination), f"sha256:{digest}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"sha256: {digest}" in done.stdout
    assert destination.read_bytes() == source.read_bytes()


def test_wrong_checksum_exits_1_and_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"payload")
    destination = tmp_path / "out.bin"
    done = run_script(str(source), str(destination), "sha256:" + "f" * 64, cwd=tmp_path)
    assert done.returncode == 1
    assert "failed: ChecksumMismatchError" in done.stderr
    assert not destination.exists()


def test_malformed_checksum_is_a_usage_error(tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"payload")
    done = run_script(str(source), str(tmp_path / "out.bin"), "sha256:abc", cwd=tmp_path)
    assert done.returncode == 2
    assert "64 hex digits" in done.stderr
