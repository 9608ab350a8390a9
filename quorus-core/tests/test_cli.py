"""The ``quorus`` command: results, JSON output, exit codes and one-line errors for bad input."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

QUORUS = str(Path(sys.executable).with_name("quorus"))
JSON_KEYS = {"status", "bytes", "sha256", "seconds", "attempts", "source", "destination"}


def run(*args: str, as_user: str | None = None, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [QUORUS, *args]
    if as_user is not None and os.geteuid() == 0:
        # Root reads and writes anything: drop to an unprivileged user to see permission errors.
        command = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups",
                   *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def no_files_named(directory: Path, name: str) -> bool:
    return not (directory / name).exists()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.bin"
    path.write_bytes(os.urandom(300_000))
    return path


def test_transfer_json_result(source: Path, tmp_path: Path) -> None:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    proc = run("transfer", str(source), str(tmp_path / "out" / "copy.bin"), "--json",
               "--checksum", f"sha256:{digest}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) >= JSON_KEYS
    assert (result["status"], result["bytes"], result["sha256"], result["attempts"]) == (
        "completed", 300_000, digest, 1)
    assert result["destination"] == str(tmp_path / "out" / "copy.bin")
    assert (tmp_path / "out" / "copy.bin").read_bytes() == source.read_bytes()


def test_human_output_names_result(source: Path, tmp_path: Path) -> None:
    proc = run("transfer", str(source), str(tmp_path / "copy.bin"), "--progress", "plain")
    assert proc.returncode == 0, proc.stderr
    assert "transferred" in proc.stderr
    assert "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest() in proc.stderr


def test_overwrite_policies(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "existing.bin"
    target.write_bytes(b"keep me")
    refused = run("transfer", str(source), str(target), "--overwrite", "fail")
    assert refused.returncode == 1
    assert "exists" in one_line_error(refused)
    assert target.read_bytes() == b"keep me"
    assert run("transfer", str(source), str(target)).returncode == 0
    skipped = run("transfer", str(source), str(target), "--overwrite", "skip-same", "--json")
    assert json.loads(skipped.stdout)["status"] == "skipped"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["http:/broken", "{dst}"], "malformed URI 'http:/broken'"),
        (["gopher://host/file", "{dst}"], "no protocol for scheme 'gopher'"),
        (["{src}", "{dst}", "--checksum", "sha256:12ab"], "invalid checksum 'sha256:12ab'"),
        (["{src}", "{dst}", "--checksum", "md5:" + "0" * 32], "unsupported algorithm 'md5'"),
        (["{src}", "{dst}", "--bwlimit", "fast"], "invalid --bwlimit 'fast'"),
        (["{src}", "{dst}", "--mode", "rwx"], "invalid --mode 'rwx'"),
        (["{src}", "{dst}", "-o", "nodot=1"], "invalid option 'nodot'"),
        (["{src}", "{dst}", "--size", "big"], "invalid expected size 'big'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: list[str], fragment: str, source: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "never.bin"
    proc = run("transfer", *(a.format(src=source, dst=dst) for a in args))
    assert proc.returncode == 2
    assert fragment in one_line_error(proc)
    assert not dst.exists()


def test_failures_exit_1_with_one_line(source: Path, tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    cases = [
        ([str(tmp_path / "missing.bin"), str(tmp_path / "x")], "missing.bin: no such file"),
        ([str(tmp_path / "a-directory"), str(tmp_path / "x")], "is a directory"),
        ([str(source), str(tmp_path / "a-directory")], "destination"),
        ([str(source), str(tmp_path / "x"), "--checksum", "sha256:" + "0" * 64],
         "checksum mismatch"),
        ([str(source), str(tmp_path / "x"), "--size", "1MB.."], "below the minimum"),
    ]
    for args, fragment in cases:
        proc = run("transfer", *args)
        assert proc.returncode == 1, (args, proc.stderr)
        line = one_line_error(proc)
        assert fragment in line, line
    assert not (tmp_path / "x").exists()
    assert not [p for p in tmp_path.iterdir() if "quorus-partial" in p.name]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can traverse (pytest's own tmp dirs are private)."""
    path = Path(tempfile.mkdtemp(prefix="quorus-cli-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_permission_errors(shared_dir: Path) -> None:
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.fail("running as root needs setpriv (util-linux) to test permission errors")
        if run("--version", as_user="65534").returncode != 0:
            pytest.skip("the virtualenv is not readable by an unprivileged user here")
    tmp_path = shared_dir
    unreadable = tmp_path / "secret.bin"
    unreadable.write_bytes(b"x" * 100)
    unreadable.chmod(0o000)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    readable = tmp_path / "public.bin"
    readable.write_bytes(b"y" * 100)
    readable.chmod(0o644)
    user = "65534"  # nobody
    proc = run("transfer", str(unreadable), "/tmp/never-written", as_user=user)
    assert proc.returncode == 1
    assert f"cannot read {unreadable}: permission denied" in one_line_error(proc)
    proc = run("transfer", str(readable), str(locked / "out.bin"), as_user=user)
    assert proc.returncode == 1
    assert "permission denied" in one_line_error(proc)
    assert list(locked.iterdir()) == []


def test_plugins_lists_builtins(tmp_path: Path) -> None:
    proc = run("plugins", "--json")
    assert proc.returncode == 0
    listed = {(p["group"], p["name"]): p for p in json.loads(proc.stdout)}
    assert listed[("quorus.protocols", "file")]["distribution"] == "quorus-core"
    assert listed[("quorus.protocols", "file")]["status"] == "loaded"
    disabled = run("plugins", "--json", env={"QUORUS_DISABLE_PLUGINS": "memory"})
    statuses = {p["name"]: p["status"] for p in json.loads(disabled.stdout)}
    assert statuses["memory"] == "disabled"
    table = run("plugins")
    assert "quorus-core" in table.stdout


def test_help_documents_exit_codes() -> None:
    proc = run("transfer", "--help")
    assert proc.returncode == 0
    assert "--checksum" in proc.stdout
    assert run("transfer").returncode == 2


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a pseudo-terminal")
def test_progress_bar_on_a_terminal(source: Path, tmp_path: Path) -> None:
    """On a terminal, --progress auto draws a bar that ends at the full size."""
    command = f"{QUORUS} transfer {source} {tmp_path / 'tty.bin'} --bwlimit 1MB/s"
    proc = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", proc.stdout)
    assert re.search(r"(\d+\.\d)/\1 KiB", plain), plain[-500:]  # the bar's final state
    assert "transferred" in plain
    assert (tmp_path / "tty.bin").read_bytes() == source.read_bytes()
