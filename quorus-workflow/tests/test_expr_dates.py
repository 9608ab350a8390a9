"""Java-style date patterns: known outputs, Java's padding and quoting rules, zones across
daylight-saving changes, and errors that name the letter and column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from quorus.workflow.expr import (
    ExpressionError,
    compile_pattern,
    format_date,
    parse_date_argument,
    render_date,
)

WHEN = datetime(2024, 3, 5, 7, 8, 9, 123456, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("yyyy-MM-dd", "2024-03-05"),
        ("yyyyMMdd'T'HHmmss", "20240305T070809"),
        ("EEE, d MMM yyyy", "Tue, 5 Mar 2024"),
        ("EEEE d MMMM", "Tuesday 5 March"),
        ("EEEEE MMMMM", "T M"),
        ("hh:mm a", "07:08 AM"),
        ("y yy yyy yyyyy uuuu", "2024 24 2024 02024 2024"),
        ("M MM d dd", "3 03 5 05"),
        ("D DD DDD", "65 65 065"),
        ("H HH h k K m mm s ss", "7 07 7 7 7 8 08 9 09"),
        ("S SS SSS SSSSSS SSSSSSSSS", "1 12 123 123456 123456000"),
        ("n A N", "123456000 25689123 25689123456000"),
        ("w ww YYYY", "10 10 2024"),
        ("Q QQ QQQ QQQQ G GGGG", "1 01 Q1 1st quarter AD Anno Domini"),
        ("Z X XX XXX x xx xxx", "+0000 Z Z Z +00 +0000 +00:00"),
        ("ZZZZ ZZZZZ O OOOO z VV", "GMT Z GMT GMT UTC Z"),
        ("'at' HH 'o''clock'", "at 07 o'clock"),
        ("HH''mm", "07'08"),
        ("''''", "'"),
        ("[yyyy]-[MM]", "2024-03"),
        ("yyyy/MM/dd, HH.mm é", "2024/03/05, 07.08 é"),
    ],
)
def test_known_patterns(pattern: str, expected: str) -> None:
    assert format_date(pattern, WHEN) == expected


@pytest.mark.parametrize(
    ("hour", "expected"),
    [(0, "12 24 0 AM 00"), (11, "11 11 11 AM 11"), (12, "12 12 0 PM 12"), (13, "01 13 1 PM 13")],
)
def test_twelve_and_twenty_four_hour_clocks(hour: int, expected: str) -> None:
    assert format_date("hh k K a HH", WHEN.replace(hour=hour)) == expected


def test_years_are_padded_to_the_letter_count_and_yy_is_two_digits() -> None:
    early = datetime(33, 1, 9, tzinfo=UTC)
    assert format_date("y yy yyyy", early) == "33 33 0033"
    assert format_date("yy", datetime(2005, 6, 1, tzinfo=UTC)) == "05"


def test_iso_week_and_week_based_year_at_the_turn_of_the_year() -> None:
    # 2024-12-30 is a Monday in ISO week 1 of 2025; 2021-01-01 is in week 53 of 2020.
    assert format_date("YYYY-'W'ww", datetime(2024, 12, 30, tzinfo=UTC)) == "2025-W01"
    assert format_date("YYYY-'W'ww yyyy", datetime(2021, 1, 1, tzinfo=UTC)) == "2020-W53 2021"


@pytest.mark.parametrize(
    ("zone", "pattern", "expected"),
    [
        ("Asia/Kolkata", "X XX XXX XXXX x O OOOO Z", "+0530 +0530 +05:30 +0530 +0530 "
                                                     "GMT+5:30 GMT+05:30 +0530"),
        ("America/New_York", "X XXX xxxxx O OOOO ZZZZ z", "-05 -05:00 -05:00 GMT-5 GMT-05:00 "
                                                          "GMT-05:00 EST"),
        ("Europe/Paris", "HH:mm z VV XXX", "08:08 CET Europe/Paris +01:00"),
    ],
)
def test_offsets_and_zone_names(zone: str, pattern: str, expected: str) -> None:
    assert format_date(pattern, WHEN.astimezone(ZoneInfo(zone))) == expected


def test_fixed_offset_zones_print_their_offset_as_id() -> None:
    when = WHEN.astimezone(timezone(timedelta(hours=-3, minutes=-30)))
    assert format_date("VV X", when) == "-03:30 -0330"


@pytest.mark.parametrize(
    ("instant", "zone", "expected"),
    [
        # Paris moves from CET to CEST at 01:00 UTC on 2024-03-31.
        (datetime(2024, 3, 31, 0, 59, tzinfo=UTC), "Europe/Paris", "2024-03-31 01:59 CET +01:00"),
        (datetime(2024, 3, 31, 1, 0, tzinfo=UTC), "Europe/Paris", "2024-03-31 03:00 CEST +02:00"),
        # ... and back at 01:00 UTC on 2024-10-27, when 02:30 happens twice.
        (datetime(2024, 10, 27, 0, 30, tzinfo=UTC), "Europe/Paris",
         "2024-10-27 02:30 CEST +02:00"),
        (datetime(2024, 10, 27, 1, 30, tzinfo=UTC), "Europe/Paris",
         "2024-10-27 02:30 CET +01:00"),
        # New York springs forward at 07:00 UTC on 2024-03-10 and falls back on 2024-11-03.
        (datetime(2024, 3, 10, 6, 59, tzinfo=UTC), "America/New_York",
         "2024-03-10 01:59 EST -05:00"),
        (datetime(2024, 3, 10, 7, 0, tzinfo=UTC), "America/New_York",
         "2024-03-10 03:00 EDT -04:00"),
        (datetime(2024, 11, 3, 5, 30, tzinfo=UTC), "America/New_York",
         "2024-11-03 01:30 EDT -04:00"),
        (datetime(2024, 11, 3, 6, 30, tzinfo=UTC), "America/New_York",
         "2024-11-03 01:30 EST -05:00"),
        # Crossing midnight changes the date itself.
        (datetime(2024, 3, 5, 23, 30, tzinfo=UTC), "Europe/Paris", "2024-03-06 00:30 CET +01:00"),
    ],
)
def test_render_date_converts_into_the_named_zone(
    instant: datetime, zone: str, expected: str
) -> None:
    argument = f"yyyy-MM-dd HH:mm z XXX@{zone}"
    assert render_date(argument, instant, ZoneInfo("UTC")) == expected


def test_render_date_uses_the_default_zone_when_none_is_named() -> None:
    assert render_date("yyyy-MM-dd HH:mm", WHEN, NEW_YORK) == "2024-03-05 02:08"
    # The instant's own zone does not matter, only the target zone.
    assert render_date("HH:mm", WHEN.astimezone(PARIS), NEW_YORK) == "02:08"


def test_render_date_refuses_a_naive_instant() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_date("yyyy", datetime(2024, 1, 1), PARIS)


def test_zone_is_split_at_the_last_at_sign_outside_quotes() -> None:
    pattern, zone = parse_date_argument("'@'yyyy @ Europe/Paris")
    assert pattern.pattern == "'@'yyyy"
    assert zone == PARIS
    pattern, zone = parse_date_argument("yyyy'@UTC'")
    assert zone is None
    assert pattern.format(WHEN) == "2024@UTC"


def test_a_naive_date_cannot_print_a_zone() -> None:
    with pytest.raises(ExpressionError, match="prints a time zone") as caught:
        format_date("HH:mm XXX", datetime(2024, 1, 1, 10, 0))
    assert caught.value.column == 7
    assert format_date("HH:mm", datetime(2024, 1, 1, 10, 0)) == "10:00"


def test_patterns_are_compiled_once() -> None:
    assert compile_pattern("yyyy-MM-dd") is compile_pattern("yyyy-MM-dd")
    assert compile_pattern("XXX").needs_zone
    assert not compile_pattern("yyyy").needs_zone


@pytest.mark.parametrize(
    ("argument", "column", "fragment"),
    [
        ("yyyy-MM-ddTHH", 11, "letter 'T' is reserved"),
        ("yyyy-MM-dd bb", 12, "letter 'b' is reserved"),
        ("ddd", 1, "'ddd' has the wrong number of letters: write d or dd"),
        ("HH:mmm", 4, "'mmm' has the wrong number"),
        ("aa", 1, "write a"),
        ("V", 1, "write VV"),
        ("OO", 1, "write O or OOOO"),
        ("SSSSSSSSSS", 1, "wrong number of letters"),
        ("zzzz", 1, "full zone names are not available"),
        ("e", 1, "use E for the day's name"),
        ("yyyy 'T", 6, "quote opened here is never closed"),
        ("yyyy]", 5, "']' closes an optional section"),
        ("yyyy#", 5, "'#' is reserved"),
        ("", None, "empty date pattern"),
        ("yyyy@Europe/Pari", 6, "did you mean 'Europe/Paris'?"),
        ("yyyy@ europe/paris", 7, "zone names are case-sensitive"),
        ("yyyy@Mars/Olympus", 6, "unknown time zone 'Mars/Olympus'"),
        ("yyyy@../../etc/passwd", 6, "unknown time zone"),
        ("yyyy@", 5, "no time zone after '@'"),
    ],
)
def test_bad_patterns_and_zones_say_what_and_where(
    argument: str, column: int | None, fragment: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_date_argument(argument)
    assert fragment in caught.value.message
    assert caught.value.column == column
    assert caught.value.text == argument


def test_error_text_shows_a_caret_under_the_letter() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_pattern("yyyy-MM-ddThh")
    assert str(caught.value).splitlines()[1:] == ["  yyyy-MM-ddThh", "            ^"]


# From year 1000: the C library's %Y does not pad earlier years to four digits, Java's yyyy does
# (see test_years_are_padded_to_the_letter_count_and_yy_is_two_digits).
aware_datetimes = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, PARIS, NEW_YORK, ZoneInfo("Asia/Kolkata")]),
)


@given(aware_datetimes)
def test_date_and_time_fields_agree_with_strftime(when: datetime) -> None:
    assert format_date("yyyy-MM-dd HH:mm:ss", when) == when.strftime("%Y-%m-%d %H:%M:%S")
    assert format_date("D", when) == str(when.timetuple().tm_yday)
    assert format_date("SSSSSS", when) == f"{when.microsecond:06d}"


@given(aware_datetimes)
def test_iso_fields_agree_with_isocalendar(when: datetime) -> None:
    year, week, _ = when.isocalendar()
    assert format_date("YYYY ww", when) == f"{year:04d} {week:02d}"


@given(aware_datetimes)
def test_offsets_agree_with_strftime(when: datetime) -> None:
    assert format_date("xx", when) == when.strftime("%z")[:5]
    assert format_date("z", when) == when.strftime("%Z")
