"""Requests, checksums, size ranges and retry policies."""

from __future__ import annotations

import random

import pytest
from quorus.core.engine import ExpectedChecksum, RetryPolicy, SizeRange, TransferRequest
from quorus.core.errors import ConfigurationError, SizeMismatchError

DIGEST = "ab" * 32


def test_checksum_parses_and_normalises() -> None:
    parsed = ExpectedChecksum.parse(f"SHA256:{DIGEST.upper()}")
    assert parsed.hexdigest == DIGEST
    assert str(parsed) == f"sha256:{DIGEST}"
    assert ExpectedChecksum.parse(f"sha-256:{DIGEST}").algorithm == "sha256"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (DIGEST, "expected 'sha256:'"),
        ("sha256:xyz", "expected 'sha256:'"),
        ("sha256:abcd", "64 hex digits, not 4"),
        (f"md5:{DIGEST}", "unsupported algorithm 'md5'"),
    ],
)
def test_bad_checksums_are_named(text: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        ExpectedChecksum.parse(text)
    assert fragment in str(excinfo.value)
    assert repr(text) in str(excinfo.value)


def test_size_range_exact_and_open() -> None:
    assert SizeRange.parse("10MB") == SizeRange(10**7, 10**7)
    assert SizeRange.parse("10MB..5GB") == SizeRange(10**7, 5 * 10**9)
    assert SizeRange.parse("..1KiB") == SizeRange(None, 1024)
    assert SizeRange.parse("1KiB..") == SizeRange(1024, None)
    with pytest.raises(ConfigurationError, match="minimum exceeds maximum"):
        SizeRange.parse("5GB..10MB")


def test_size_range_check() -> None:
    SizeRange(10, 20).check(15, "file")
    with pytest.raises(SizeMismatchError, match="below the minimum of 10"):
        SizeRange(10, 20).check(5, "file")
    with pytest.raises(SizeMismatchError, match="above the maximum of 20"):
        SizeRange(10, 20).check(25, "file")
    with pytest.raises(SizeMismatchError, match="expected exactly 7"):
        SizeRange(7, 7).check(8, "file")


def test_retry_delays_grow_exponentially_within_jitter_and_cap() -> None:
    policy = RetryPolicy(max_attempts=10, initial_delay=0.5, max_delay=10.0, jitter=0.2)
    rng = random.Random(1)
    for attempt in range(1, 10):
        base = min(10.0, 0.5 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = policy.delay(attempt, rng=rng)
            assert base * 0.8 - 1e-9 <= delay <= min(base * 1.2, 10.0) + 1e-9


def test_retry_after_is_honoured_up_to_its_cap() -> None:
    policy = RetryPolicy(initial_delay=0.1, max_delay=1.0, jitter=0.0)
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert policy.delay(1, retry_after=10_000.0) == policy.max_retry_after
    assert policy.delay(1, retry_after=0.0) == pytest.approx(0.1)


def test_retry_policy_from_design_block() -> None:
    policy = RetryPolicy.from_config(
        {"maxAttempts": 5, "backoff": "exponential", "initialDelay": "500ms", "maxDelay": "10s"}
    )
    assert (policy.max_attempts, policy.initial_delay, policy.max_delay) == (5, 0.5, 10.0)
    with pytest.raises(ConfigurationError, match="unknown retry settings: maxAttempt"):
        RetryPolicy.from_config({"maxAttempt": 5})
    with pytest.raises(ConfigurationError, match="at least 1"):
        RetryPolicy(max_attempts=0)


def test_request_create_parses_texts() -> None:
    request = TransferRequest.create("/a/b", "memory://s/c", checksum=f"sha256:{DIGEST}", size="1KB..")
    assert request.source.path == "/a/b"
    assert request.destination.scheme == "memory"
    assert request.checksum is not None and request.checksum.hexdigest == DIGEST
    assert request.size == SizeRange(1000, None)
