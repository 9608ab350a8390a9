"""pytest-benchmark: the engine's data path against plain hashing of the same bytes.

Run with `pytest tests/benchmarks/test_pipeline_benchmark.py --benchmark-enable`; in the
normal suite these run once each as smoke tests (benchmarking disabled).
The ratio to read is `quorus_copy` vs `hashlib_only`: how much the full verified copy costs
over just hashing the data, both measured in the same session.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import pytest
from quorus.core import TransferEngine, TransferRequest

SIZE = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "source.bin"
    path.write_bytes(bytes(range(256)) * (SIZE // 256))
    return path


def test_hashlib_only(benchmark: pytest.FixtureRequest, source: Path) -> None:
    def run() -> str:
        hasher = hashlib.sha256()
        with source.open("rb") as f:
            while chunk := f.read(1024 * 1024):
                hasher.update(chunk)
        return hasher.hexdigest()

    assert len(benchmark(run)) == 64  # type: ignore[operator]


def test_quorus_copy(benchmark: pytest.FixtureRequest, source: Path, tmp_path: Path) -> None:
    expected = hashlib.sha256(source.read_bytes()).hexdigest()

    async def copy() -> str:
        async with TransferEngine() as engine:
            result = await engine.transfer(
                TransferRequest.create(str(source), str(tmp_path / "copy.bin")))
        assert result.ok, result.error
        return result.sha256 or ""

    assert benchmark(lambda: anyio.run(copy)) == expected  # type: ignore[operator]
