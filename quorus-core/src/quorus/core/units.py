"""Human-friendly quantities: sizes (``10MB``, ``1.5GiB``), rates (``50MB/s``, ``100M``, or in
bits: ``100Mbps``) and durations (``500ms``, ``10s``, ``5m``, ``1h30m``, ``2d``), as written in
YAML and on the command line."""

from __future__ import annotations

import re

from quorus.core.errors import ConfigurationError

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_BITS = re.compile(r"^(.*?)\s*bps$", re.IGNORECASE)


def parse_size(value: str | int, *, what: str = "size") -> int:
    """Bytes in ``value``: a plain number or one with a unit (``10MB`` = 10**7, ``1GiB``)."""
    if isinstance(value, bool):
        raise ConfigurationError(f"invalid {what} {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigurationError(f"invalid {what} {value!r}: must not be negative")
        return value
    match = _NUMBER_UNIT.match(str(value))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _SIZE_UNITS:
        raise ConfigurationError(
            f"invalid {what} {value!r}: expected a number with an optional unit "
            "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_rate(value: str | int, *, what: str = "rate") -> int:
    """Bytes per second in ``value`` (``50MB/s``, ``50M``, ``1GiB/s``, ``1000000``, or bits
    per second: ``100Mbps``, ``1Gbps``)."""
    text = str(value).strip()
    bits = _BITS.match(text)
    if bits:
        rate = parse_size(bits.group(1) or "1", what=what) // 8
        if rate <= 0:
            raise ConfigurationError(f"invalid {what} {value!r}: at least 8bps")
        return rate
    if text.lower().endswith("/s"):
        text = text[:-2]
    rate = parse_size(text, what=what)
    if rate <= 0:
        raise ConfigurationError(f"invalid {what} {value!r}: must be greater than zero")
    return rate


def parse_duration(value: str | float | int, *, what: str = "duration") -> float:
    """Seconds in ``value`` (``500ms``, ``10s``, ``2m``, ``1h``, ``2d``, ``1h30m``, or a
    number of seconds)."""
    if isinstance(value, bool):
        raise ConfigurationError(f"invalid {what} {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        match = _NUMBER_UNIT.match(text)
        unit = match.group(2).lower() if match else ""
        if match and unit in _DURATION_UNITS:
            seconds = float(match.group(1)) * _DURATION_UNITS[unit]
        elif text and _DURATION_PART.sub("", text) == "":
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ConfigurationError(
                f"invalid {what} {value!r}: expected a number with ms, s, m, h or d "
                "(or a combination such as 1h30m)"
            )
    if seconds < 0:
        raise ConfigurationError(f"invalid {what} {value!r}: must not be negative")
    return seconds


def format_size(n: float) -> str:
    """``n`` bytes for people: ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


__all__ = ["format_size", "parse_duration", "parse_rate", "parse_size"]
