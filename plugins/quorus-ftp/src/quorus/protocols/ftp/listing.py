"""Parsing the lines of a ``LIST`` reply in the Unix ``ls -l`` form most servers send.

``LIST`` is used rather than ``MLSD`` because widespread servers (vsftpd among them) do not
offer ``MLSD``. Times in this form have minute resolution at best (and no year for recent
files, no time for old ones), so entries carry them as a hint, never as a version marker.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime

_LINE = re.compile(
    r"^(?P<mode>[-dlbcps][-rwxsStTl]{9})[+@.]?\s+\d+\s+\S+\s+\S+\s+(?P<size>\d+)\s+"
    r"(?P<month>[A-Za-z]{3})\s+(?P<day>\d{1,2})\s+(?P<when>\d{1,2}:\d{2}|\d{4})\s(?P<name>.+)$"
)
_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_TYPES = {"-": stat.S_IFREG, "d": stat.S_IFDIR, "l": stat.S_IFLNK}


@dataclass(frozen=True)
class ListEntry:
    name: str
    size: int
    is_dir: bool
    mtime: float | None
    mode: int | None


def parse_list_line(line: str, *, now: datetime | None = None) -> ListEntry | None:
    """The entry a ``LIST`` line describes, or ``None`` for lines of another shape
    (``total 12``, blank lines)."""
    match = _LINE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    mode_text = match["mode"]
    name = match["name"]
    if mode_text[0] == "l" and " -> " in name:
        name = name.split(" -> ", 1)[0]
    return ListEntry(
        name=name,
        size=int(match["size"]),
        is_dir=mode_text[0] == "d",
        mtime=_when(match["month"], int(match["day"]), match["when"], now),
        mode=_TYPES.get(mode_text[0], 0) | _permissions(mode_text[1:]),
    )


def _when(month_name: str, day: int, when: str, now: datetime | None) -> float | None:
    month = _MONTHS.get(month_name.title())
    if month is None:
        return None
    now = now or datetime.now(UTC)
    try:
        if ":" in when:
            hour, minute = (int(part) for part in when.split(":"))
            stamp = datetime(now.year, month, day, hour, minute, tzinfo=UTC)
            if stamp > now.replace(microsecond=0) and (stamp - now).days > 1:
                stamp = stamp.replace(year=now.year - 1)  # "recent" means the last 6 months
        else:
            stamp = datetime(int(when), month, day, tzinfo=UTC)
    except ValueError:
        return None
    return stamp.timestamp()


def _permissions(text: str) -> int:
    bits = 0
    for index, char in enumerate(text):
        if char not in "-ST":
            bits |= 1 << (8 - index)
    return bits


__all__ = ["ListEntry", "parse_list_line"]
