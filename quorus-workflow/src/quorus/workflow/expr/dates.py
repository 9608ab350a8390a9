"""Java-style (``DateTimeFormatter``) date patterns such as ``yyyy-MM-dd'T'HH:mm``, compiled
once and formatted in English, and the ``${date:PATTERN@ZONE}`` argument that pairs a pattern
with an IANA time zone.

Pattern letters follow Java: the number of letters is the minimum width (``d`` → ``5``,
``dd`` → ``05``), ``yy`` is the two-digit year, ``MMM``/``MMMM`` and ``EEE``/``EEEE`` are
names. Text in single quotes is literal (``''`` is one quote), ``[`` ``]`` mark optional
sections (always printed, since a date has every field), and any other ASCII letter is
reserved, so a typo such as ``yyyy-mm-dd`` versus ``yyyy-MM-dd`` is at least a real field and
``yyyy-MM-ddThh`` is an error rather than a silent ``T``. Unlike Java, ``w`` and ``Y`` are the
ISO week and week-based year, not the locale's.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, available_timezones

from quorus.workflow.expr.errors import ExpressionError

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_QUARTERS = ("1st quarter", "2nd quarter", "3rd quarter", "4th quarter")

_Formatter = Callable[[datetime, int], str]


def _number(value: int, count: int) -> str:
    return f"{value:0{count}d}"


def _text(full: str, count: int) -> str:
    # Java: 1-3 letters short text, 4 full, 5 narrow.
    if count == 4:
        return full
    if count == 5:
        return full[0]
    return full[:3]


def _number_or_text(value: int, full: str, count: int) -> str:
    return _number(value, count) if count <= 2 else _text(full, count)


def _year(value: int, count: int) -> str:
    return f"{value % 100:02d}" if count == 2 else _number(value, count)


def _quarter(when: datetime, count: int) -> str:
    quarter = (when.month - 1) // 3 + 1
    if count <= 2:
        return _number(quarter, count)
    return {3: f"Q{quarter}", 4: _QUARTERS[quarter - 1], 5: str(quarter)}[count]


def _offset(when: datetime) -> timedelta:
    offset = when.utcoffset()
    if offset is None:  # guarded by DatePattern.format; kept for the type checker
        raise ValueError("date has no time zone")
    return offset


def _offset_text(offset: timedelta, count: int, zero: str | None) -> str:
    """An ISO offset in Java's X/x/Z forms: 1 ``+01`` (``+0530``), 2 ``+0100``, 3 ``+01:00``,
    4 ``+0100`` (``+010015``), 5 ``+01:00`` (``+01:00:15``). ``zero`` replaces a zero offset."""
    total = int(offset.total_seconds())
    if total == 0 and zero is not None:
        return zero
    sign = "-" if total < 0 else "+"
    hours, rest = divmod(abs(total), 3600)
    minutes, seconds = divmod(rest, 60)
    colon = ":" if count in (3, 5) else ""
    text = f"{sign}{hours:02d}"
    if count != 1 or minutes:
        text += f"{colon}{minutes:02d}"
    if count >= 4 and seconds:
        text += f"{colon}{seconds:02d}"
    return text


def _localized_offset(offset: timedelta, full: bool) -> str:
    """Java's ``O`` (``GMT+1``, ``GMT+5:30``) and ``OOOO``/``ZZZZ`` (``GMT+01:00``)."""
    total = int(offset.total_seconds())
    if total == 0:
        return "GMT"
    sign = "-" if total < 0 else "+"
    hours, rest = divmod(abs(total), 3600)
    minutes, seconds = divmod(rest, 60)
    if full:
        text = f"GMT{sign}{hours:02d}:{minutes:02d}"
        return text + (f":{seconds:02d}" if seconds else "")
    text = f"GMT{sign}{hours}"
    return text + (f":{minutes:02d}" if minutes or seconds else "") + (
        f":{seconds:02d}" if seconds else "")


def _zone_id(zone: tzinfo | None) -> str:
    if isinstance(zone, ZoneInfo):
        return zone.key
    if zone is UTC:
        return "Z"
    offset = zone.utcoffset(None) if isinstance(zone, timezone) else None
    if offset is not None:
        return _offset_text(offset, 3, "Z")
    return str(zone)


def _zone_offset_z(when: datetime, count: int) -> str:
    if count <= 3:
        return _offset_text(_offset(when), 2, None)
    if count == 4:
        return _localized_offset(_offset(when), full=True)
    return _offset_text(_offset(when), 5, "Z")


def _fraction(when: datetime, count: int) -> str:
    return f"{when.microsecond * 1000:09d}"[:count]


def _nano_of_day(when: datetime) -> int:
    seconds = when.hour * 3600 + when.minute * 60 + when.second
    return seconds * 1_000_000_000 + when.microsecond * 1000


# letter -> (largest count Java accepts, formatter); counts Java refuses are refused here too.
_FIELDS: dict[str, tuple[int, _Formatter]] = {
    "G": (5, lambda w, c: {4: "Anno Domini", 5: "A"}.get(c, "AD")),
    "u": (19, lambda w, c: _year(w.year, c)),
    "y": (19, lambda w, c: _year(w.year, c)),
    "Y": (19, lambda w, c: _year(w.isocalendar().year, c)),
    "Q": (5, _quarter),
    "q": (5, _quarter),
    "M": (5, lambda w, c: _number_or_text(w.month, _MONTHS[w.month - 1], c)),
    "L": (5, lambda w, c: _number_or_text(w.month, _MONTHS[w.month - 1], c)),
    "w": (2, lambda w, c: _number(w.isocalendar().week, c)),
    "d": (2, lambda w, c: _number(w.day, c)),
    "D": (3, lambda w, c: _number(w.timetuple().tm_yday, c)),
    "E": (5, lambda w, c: _text(_WEEKDAYS[w.weekday()], c)),
    "a": (1, lambda w, c: "AM" if w.hour < 12 else "PM"),
    "H": (2, lambda w, c: _number(w.hour, c)),
    "k": (2, lambda w, c: _number(w.hour or 24, c)),
    "K": (2, lambda w, c: _number(w.hour % 12, c)),
    "h": (2, lambda w, c: _number(w.hour % 12 or 12, c)),
    "m": (2, lambda w, c: _number(w.minute, c)),
    "s": (2, lambda w, c: _number(w.second, c)),
    "S": (9, _fraction),
    "A": (19, lambda w, c: _number(_nano_of_day(w) // 1_000_000, c)),
    "n": (19, lambda w, c: _number(w.microsecond * 1000, c)),
    "N": (19, lambda w, c: _number(_nano_of_day(w), c)),
    "V": (2, lambda w, c: _zone_id(w.tzinfo)),
    "z": (3, lambda w, c: w.tzname() or _zone_id(w.tzinfo)),
    "O": (4, lambda w, c: _localized_offset(_offset(w), full=c == 4)),
    "X": (5, lambda w, c: _offset_text(_offset(w), c, "Z")),
    "x": (5, lambda w, c: _offset_text(_offset(w), c, _offset_text(timedelta(0), c, None))),
    "Z": (5, _zone_offset_z),
}
_EXACT_COUNTS = {"V": (2,), "O": (1, 4)}
_NEEDS_ZONE = frozenset("VzOXxZ")
_UNSUPPORTED = {
    "e": "the localized day-of-week number depends on the locale; use E for the day's name",
    "c": "the localized day-of-week number depends on the locale; use E for the day's name",
    "W": "the week of month depends on the locale; use w for the ISO week of the year",
    "zzzz": "full zone names are not available; use z for the abbreviation or VV for the id",
}


@dataclass(frozen=True, slots=True)
class _Field:
    letter: str
    count: int
    column: int


@dataclass(frozen=True, slots=True)
class DatePattern:
    """A compiled pattern: ``pattern`` as written and its literal and field items."""

    pattern: str
    items: tuple[str | _Field, ...]

    @property
    def needs_zone(self) -> bool:
        """Whether the pattern prints an offset or zone, so dates must be timezone-aware."""
        return any(isinstance(item, _Field) and item.letter in _NEEDS_ZONE for item in self.items)

    def format(self, when: datetime) -> str:
        """``when`` formatted by this pattern (in ``when``'s own zone)."""
        out: list[str] = []
        for item in self.items:
            if isinstance(item, str):
                out.append(item)
                continue
            if item.letter in _NEEDS_ZONE and when.utcoffset() is None:
                raise ExpressionError(
                    f"pattern letter {item.letter!r} prints a time zone, but the date "
                    f"{when.isoformat()} has none: give the date a zone", self.pattern,
                    item.column)
            out.append(_FIELDS[item.letter][1](when, item.count))
        return "".join(out)


def format_date(pattern: str, when: datetime) -> str:
    """``when`` formatted with the Java-style ``pattern``; raises ExpressionError if the
    pattern is invalid."""
    return compile_pattern(pattern).format(when)


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> DatePattern:
    """Parse a Java-style pattern once; ExpressionError names any bad letter and its column."""
    if not pattern:
        raise ExpressionError("empty date pattern: write one such as yyyy-MM-dd", pattern, None)
    items: list[str | _Field] = []
    literal: list[str] = []
    optional_depth = 0
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if "a" <= ch <= "z" or "A" <= ch <= "Z":
            end = i
            while end < len(pattern) and pattern[end] == ch:
                end += 1
            if literal:
                items.append("".join(literal))
                literal.clear()
            items.append(_field(pattern, ch, end - i, i + 1))
            i = end
        elif ch == "'":
            i = _quoted(pattern, i, literal)
        elif ch == "[":
            optional_depth += 1
            i += 1
        elif ch == "]":
            if optional_depth == 0:
                raise ExpressionError(
                    "']' closes an optional section that was never opened with '['; "
                    "quote it ( ']' ) to print it", pattern, i + 1)
            optional_depth -= 1
            i += 1
        elif ch in "{}#":
            raise ExpressionError(
                f"{ch!r} is reserved in date patterns; quote it ('{ch}') to print it",
                pattern, i + 1)
        else:
            literal.append(ch)
            i += 1
    if literal:
        items.append("".join(literal))
    return DatePattern(pattern, tuple(items))


def _quoted(pattern: str, start: int, literal: list[str]) -> int:
    """Append the quoted text starting at ``start`` to ``literal``; return the index after it.

    As in Java, ``''`` inside quoted text is a quote, and empty quoted text is a quote too:
    ``''`` and ``''''`` both print one quote.
    """
    i = start + 1
    while i < len(pattern):
        if pattern[i] == "'":
            if not pattern.startswith("''", i):
                text = pattern[start + 1:i]
                literal.append(text.replace("''", "'") if text else "'")
                return i + 1
            i += 1
        i += 1
    raise ExpressionError(
        "quote opened here is never closed: end the text with ' (write '' for a quote)",
        pattern, start + 1)


def _field(pattern: str, letter: str, count: int, column: int) -> _Field:
    if letter * count in _UNSUPPORTED or letter in _UNSUPPORTED:
        reason = _UNSUPPORTED.get(letter * count) or _UNSUPPORTED[letter]
        raise ExpressionError(
            f"pattern letters {letter * count!r} are not supported: {reason}", pattern, column)
    if letter not in _FIELDS:
        raise ExpressionError(
            f"pattern letter {letter!r} is reserved and has no meaning here; put text in "
            f"quotes, as in 'T'", pattern, column)
    largest = _FIELDS[letter][0]
    allowed = _EXACT_COUNTS.get(letter)
    if count > largest or (allowed is not None and count not in allowed):
        counts = allowed or tuple(range(1, largest + 1))
        shown = " or ".join(letter * n for n in counts[:5]) + (" …" if len(counts) > 5 else "")
        raise ExpressionError(
            f"{letter * count!r} has the wrong number of letters: write {shown}",
            pattern, column)
    return _Field(letter, count, column)


def _split_zone(argument: str) -> int:
    """Index of the last ``@`` outside quotes in ``argument``, or -1."""
    at = -1
    quoted = False
    for index, ch in enumerate(argument):
        if ch == "'":
            quoted = not quoted
        elif ch == "@" and not quoted:
            at = index
    return at


def parse_date_argument(argument: str) -> tuple[DatePattern, ZoneInfo | None]:
    """Split ``PATTERN@ZONE`` (the ``@`` being the last one outside quotes) and check both.

    Spaces around the ``@`` are ignored. Raises ExpressionError, with the column in
    ``argument``, for a bad pattern or an unknown zone.
    """
    at = _split_zone(argument)
    try:
        pattern = compile_pattern(argument if at < 0 else argument[:at].rstrip())
    except ExpressionError as error:
        raise error.shifted(argument, 0) from None
    if at < 0:
        return pattern, None
    raw_zone = argument[at + 1:]
    name = raw_zone.strip()
    column = at + 2 + (len(raw_zone) - len(raw_zone.lstrip()))
    if not name:
        raise ExpressionError(
            "no time zone after '@': write one such as @Europe/Paris or @UTC, or drop the '@'",
            argument, at + 1)
    return pattern, zone_named(name, argument, column)


def zone_named(name: str, text: str, column: int) -> ZoneInfo:
    """The IANA zone ``name``; ExpressionError pointing at ``column`` of ``text`` if unknown."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        hint = _zone_suggestion(name)
    raise ExpressionError(
        f"unknown time zone {name!r}: {hint}", text, column)


def _zone_suggestion(name: str) -> str:
    zones = _known_zones()
    folded = {zone.lower(): zone for zone in zones}
    if name.lower() in folded:
        return f"did you mean {folded[name.lower()]!r}? (zone names are case-sensitive)"
    close = difflib.get_close_matches(name, zones, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return "use an IANA zone name such as Europe/Paris, America/New_York or UTC"


@functools.cache
def _known_zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def render_date(argument: str, at: datetime, default_zone: ZoneInfo) -> str:
    """The value of ``${date:ARGUMENT}`` for the instant ``at`` (timezone-aware): ``at`` is
    converted to the argument's zone, or ``default_zone`` when it names none."""
    if at.utcoffset() is None:
        raise ValueError(f"render_date needs a timezone-aware instant, got {at.isoformat()}")
    pattern, zone = parse_date_argument(argument)
    return pattern.format(at.astimezone(zone or default_zone))
