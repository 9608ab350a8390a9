"""Sizes, rates and durations as people write them."""

from __future__ import annotations

import pytest
from quorus.core.errors import ConfigurationError
from quorus.core.units import format_size, parse_duration, parse_rate, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("1048576", 1048576), ("10MB", 10_000_000), ("1.5KiB", 1536), ("5 GB", 5 * 10**9),
     ("2GiB", 2 * 1024**3), ("7b", 7)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "-1", "ten", "5 parsecs", "1e9"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid size"):
        parse_size(text)


def test_parse_rate() -> None:
    assert parse_rate("50MB/s") == 50_000_000
    assert parse_rate("10M") == 10_000_000
    with pytest.raises(ConfigurationError, match="greater than zero"):
        parse_rate("0")


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("10s", 10.0), ("2m", 120.0), ("1h", 3600.0), (3, 3.0)]
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_unknown_unit() -> None:
    with pytest.raises(ConfigurationError, match="ms, s, m, h or d"):
        parse_duration("3 fortnights")


def test_format_size() -> None:
    assert format_size(512) == "512 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(3 * 1024**3) == "3.0 GiB"


@pytest.mark.parametrize(("text", "expected"), [
    ("100Mbps", 12_500_000), ("1Gbps", 125_000_000), ("8bps", 1), ("100 Mbps", 12_500_000),
    ("1Kibps", 128),
])
def test_parse_rate_in_bits(text: str, expected: int) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize(("text", "seconds"), [
    ("1h30m", 5400.0), ("2d", 172_800.0), ("1m30s", 90.0), ("1d12h", 129_600.0),
    ("1s500ms", 1.5),
])
def test_parse_compound_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1h30", "h", "1x30m", "", "4bps/s", "1bps"])
def test_malformed_durations_and_rates_are_refused(text: str) -> None:
    parse = parse_rate if "bps" in text else parse_duration
    with pytest.raises(ConfigurationError):
        parse(text)
