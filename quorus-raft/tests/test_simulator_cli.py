"""``python -m quorus.raft.sim``: one seed replays exactly; a range soaks; failures exit 1."""

from __future__ import annotations

import subprocess
import sys

import pytest
from quorus.raft.sim.__main__ import main


def test_one_seed_prints_its_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seed", "7", "--nodes", "5", "--steps", "400"]) == 0
    out = capsys.readouterr().out
    assert "ok seed=7 nodes=5" in out and "1 passed, 0 failed" in out


def test_the_same_seed_prints_the_same_run(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--seed", "3", "--nodes", "4", "--steps", "400"])
    first = capsys.readouterr().out.splitlines()[0]
    main(["--seed", "3", "--nodes", "4", "--steps", "400"])
    assert capsys.readouterr().out.splitlines()[0] == first


def test_a_range_of_seeds_cycles_cluster_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "0..7", "--nodes", "3,4,5,7", "--steps", "300", "-v"]) == 0
    out = capsys.readouterr().out
    assert "8 passed, 0 failed" in out
    assert {f"nodes={n}" for n in (3, 4, 5, 7)} <= {w for w in out.split() if "nodes=" in w}


def test_runs_as_a_module() -> None:
    proc = subprocess.run([sys.executable, "-m", "quorus.raft.sim", "--seed", "1", "--steps",
                           "200"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "1 passed, 0 failed" in proc.stdout


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--seeds", "12"])
    assert "0..999" in capsys.readouterr().err
