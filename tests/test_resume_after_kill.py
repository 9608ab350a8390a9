"""A transfer killed with SIGKILL resumes where it stopped and still verifies the whole file."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

QUORUS = str(Path(sys.executable).with_name("quorus"))
SIZE = 48 * 1024 * 1024


def test_kill_9_then_rerun_resumes_and_verifies(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    with source.open("wb") as f:
        for _ in range(SIZE // (1024 * 1024)):
            f.write(os.urandom(1024 * 1024))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    destination = tmp_path / "out" / "big.bin"
    partial = tmp_path / "out" / ".big.bin.quorus-partial"

    # Throttled so it is surely still running when killed.
    proc = subprocess.Popen(
        [QUORUS, "transfer", str(source), str(destination), "--bwlimit", "8MiB/s", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if partial.exists() and partial.stat().st_size >= 4 * 1024 * 1024:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        else:
            raise AssertionError("the partial file never grew")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert not destination.exists()
    kept = partial.stat().st_size
    assert 0 < kept < SIZE

    rerun = subprocess.run(
        [QUORUS, "transfer", str(source), str(destination), "--json",
         "--checksum", f"sha256:{digest}"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert result["status"] == "completed"
    assert result["resumed_from"] == kept
    assert result["bytes_transferred"] == SIZE - kept
    assert result["sha256"] == digest
    assert hashlib.sha256(destination.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in destination.parent.iterdir()) == ["big.bin"]


def test_source_rewritten_after_kill_starts_over(tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(16 * 1024 * 1024))
    destination = tmp_path / "data.copy"
    partial = tmp_path / ".data.copy.quorus-partial"
    proc = subprocess.Popen(
        [QUORUS, "transfer", str(source), str(destination), "--bwlimit", "4MiB/s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            partial.exists() and partial.stat().st_size > 1024 * 1024
        ):
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert partial.exists()

    replacement = os.urandom(16 * 1024 * 1024)
    source.write_bytes(replacement)
    rerun = subprocess.run([QUORUS, "transfer", str(source), str(destination), "--json"],
                           capture_output=True, text=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert result["resumed_from"] == 0
    assert destination.read_bytes() == replacement


def test_a_second_process_is_told_the_destination_is_busy(tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(8 * 1024 * 1024))
    destination = tmp_path / "out.bin"
    first = subprocess.Popen(
        [QUORUS, "transfer", str(source), str(destination), "--bwlimit", "4MiB/s", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        partial = tmp_path / ".out.bin.quorus-partial"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (partial.exists() and partial.stat().st_size):
            time.sleep(0.05)
        second = subprocess.run(
            [QUORUS, "transfer", str(source), str(destination), "--retries", "0"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert second.returncode == 1
        assert "another transfer is writing" in second.stderr
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=10)
    assert first.returncode == 0, err
    assert json.loads(out)["status"] == "completed"
    assert destination.read_bytes() == source.read_bytes()
