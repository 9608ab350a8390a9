"""The allocator settings of streaming processes: applied on glibc, left alone when the user
tuned malloc. Each case runs in a fresh interpreter (the settings are process-wide)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "from quorus.core.allocator import tune_for_streaming; print(tune_for_streaming())"


def probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env},
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_applied_on_glibc() -> None:
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    assert probe() == str(libc.startswith("glibc"))


@pytest.mark.parametrize("name", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                                  "GLIBC_TUNABLES"])
def test_a_users_own_malloc_settings_win(name: str) -> None:
    assert probe(**{name: "131072" if name != "GLIBC_TUNABLES" else "glibc.malloc.arena_max=2"}
                 ) == "False"
