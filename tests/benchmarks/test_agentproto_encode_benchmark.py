"""pytest-benchmark: encoding the leader's most frequent large message, an assignment.

Run with `pytest tests/benchmarks/test_agentproto_encode_benchmark.py --benchmark-enable`; in
the normal suite these run once each as smoke tests (benchmarking disabled). The ratio to read
is `by_inspection` (the encoding rule applied by looking at every value, how the codec worked
before) against `by_class` (the codec: the rule chosen once per class), on the same message.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

import pytest
from quorus.core.agentproto import Assign, TransferOptions, codec, to_wire

ASSIGN = Assign(
    "job-000123", 1, "sftp://files.example/srv/out/2026/11/27/batch-0042/data-000123.bin",
    "/data/tenants/acme/in/2026/11/27/batch-0042/data-000123.bin",
    TransferOptions(checksum="ab" * 32, size=1 << 30, bandwidth_limit=50_000_000,
                    protocol_options={"sftp.username": "deploy"}, mode=0o640,
                    storage_roots=("/data/tenants/acme",)),
    tenant="acme", namespace="finance",
)


def by_inspection(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: by_inspection(getattr(value, name))
                for name, _ in codec.field_types(type(value))}
    if isinstance(value, tuple | list):
        return [by_inspection(item) for item in value]
    if isinstance(value, Mapping):
        return {by_inspection(k): by_inspection(v) for k, v in value.items()}
    return value


def test_by_inspection(benchmark: pytest.FixtureRequest) -> None:
    assert benchmark(by_inspection, ASSIGN) == codec.encode(ASSIGN)  # type: ignore[operator]


def test_by_class(benchmark: pytest.FixtureRequest) -> None:
    assert benchmark(codec.encode, ASSIGN) == by_inspection(ASSIGN)  # type: ignore[operator]


def test_to_wire(benchmark: pytest.FixtureRequest) -> None:
    assert benchmark(to_wire, ASSIGN)["type"] == "assign"  # type: ignore[operator]
