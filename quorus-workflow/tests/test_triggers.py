"""Trigger timing without waiting: cron schedules on a zone's wall clock across both daylight
saving changes of Europe/Paris, the missed-fire policies after a downtime, flag-file
signatures on a real file, and problems found before a trigger is registered."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from quorus.workflow.model import Trigger
from quorus.workflow.triggers import (
    MAX_MISSED,
    due_fires,
    file_fires,
    file_signature,
    fire_execution_id,
    fires_between,
    next_fire,
    trigger_problem,
)

PARIS = ZoneInfo("Europe/Paris")


def at(*fields: int) -> float:
    return datetime(*fields, tzinfo=PARIS).timestamp()  # type: ignore[misc]


def shown(instants: list[float]) -> list[str]:
    return [datetime.fromtimestamp(i, PARIS).isoformat() for i in instants]


def cron(schedule: str, missed: str = "once") -> Trigger:
    return Trigger("t", "cron", schedule, "Europe/Paris", missed_fires=missed)


def test_spring_forward_fires_a_skipped_time_once_when_the_clocks_reach_it() -> None:
    daily = cron("30 2 * * *")
    assert shown(fires_between(daily, at(2024, 3, 29, 12), at(2024, 4, 1, 12), 10)) == [
        "2024-03-30T02:30:00+01:00", "2024-03-31T03:00:00+02:00",
        "2024-04-01T02:30:00+02:00"]
    # Several times in the gap (02:00 and 02:30) and 03:00 itself: one fire at 03:00.
    half_hourly = cron("*/30 * * * *")
    assert shown(fires_between(half_hourly, at(2024, 3, 31, 1, 10), at(2024, 3, 31, 4), 10)) == [
        "2024-03-31T01:30:00+01:00", "2024-03-31T03:00:00+02:00",
        "2024-03-31T03:30:00+02:00", "2024-03-31T04:00:00+02:00"]
    assert shown([next_fire(daily, at(2024, 3, 30, 12))]) == ["2024-03-31T03:00:00+02:00"]


def test_fall_back_fires_a_repeated_time_once() -> None:
    daily = cron("30 2 * * *")
    assert shown(fires_between(daily, at(2024, 10, 26, 12), at(2024, 10, 28, 12), 10)) == [
        "2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"]
    first_0230 = at(2024, 10, 27, 2, 30)  # fold 0: the summer-time reading
    assert next_fire(daily, first_0230) == at(2024, 10, 28, 2, 30)
    assert due_fires(daily, first_0230, 0.0, first_0230 + 3600) == []  # 02:30 again: no


def test_missed_fire_policies_after_a_downtime() -> None:
    hourly = cron("0 * * * *", "once")
    last, now = at(2024, 6, 1, 8), at(2024, 6, 1, 12, 10)
    assert shown(due_fires(hourly, last, 0.0, now)) == ["2024-06-01T12:00:00+02:00"]
    assert due_fires(cron("0 * * * *", "skip"), last, 0.0, now) == []
    assert shown(due_fires(cron("0 * * * *", "all"), last, 0.0, now)) == [
        f"2024-06-01T{h:02d}:00:00+02:00" for h in (9, 10, 11, 12)]
    # A time that just came is due under every policy (skip included).
    just = at(2024, 6, 1, 12, 0, 5)
    for policy in ("once", "skip", "all"):
        assert due_fires(cron("0 * * * *", policy), last + 3 * 3600, 0.0, just) == [
            at(2024, 6, 1, 12)]
    # Nothing between the last fire and now: nothing due.
    assert due_fires(hourly, at(2024, 6, 1, 12), 0.0, at(2024, 6, 1, 12, 59)) == []


def test_all_is_bounded_to_the_latest_missed_fires() -> None:
    every_minute = cron("* * * * *", "all")
    now = at(2024, 6, 2, 0, 0)
    fires = due_fires(every_minute, at(2024, 6, 1, 0, 0), 0.0, now)
    assert len(fires) == MAX_MISSED
    assert fires[-1] == now and fires[0] == now - (MAX_MISSED - 1) * 60


def test_a_trigger_never_fired_counts_from_its_registration() -> None:
    hourly = cron("0 * * * *")
    registered = at(2024, 6, 1, 8, 30)
    assert due_fires(hourly, None, registered, at(2024, 6, 1, 8, 59)) == []
    assert due_fires(hourly, None, registered, at(2024, 6, 1, 9, 0, 1)) == [at(2024, 6, 1, 9)]
    disabled = Trigger("t", "cron", "0 * * * *", "UTC", enabled=False)
    assert due_fires(disabled, None, registered, at(2024, 6, 2)) == []


def test_flag_file_signature_changes_with_the_file(tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    assert file_signature(str(flag)) is None
    flag.write_text("one")
    first = file_signature(str(flag))
    assert file_fires(None, first)
    assert not file_fires(first, file_signature(str(flag)))  # seen already
    stat = flag.stat()
    os.utime(flag, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = file_signature(str(flag))
    assert touched != first and file_fires(first, touched)
    flag.unlink()
    assert not file_fires(touched, file_signature(str(flag)))  # gone: nothing fires


def test_fire_ids_derive_from_the_scheduled_time() -> None:
    assert fire_execution_id("sync", "nightly", at(2024, 3, 31, 3)) == \
        "sync-nightly-20240331T010000000Z"
    assert fire_execution_id("sync", "flag", 1_700_000_000.9996) == \
        "sync-flag-20231114T221321000Z"


@pytest.mark.parametrize(("trigger", "problem"), [
    (Trigger("t", "cron", "61 * * * *"), "not a cron schedule"),
    (Trigger("t", "cron", "0 0 * * * *"), "five fields"),
    (Trigger("t", "cron", "0 2 * * *", "Europe/Atlantis"), "not an IANA zone"),
    (Trigger("t", "fileSystem", path="flags/ready"), "must be absolute"),
    (Trigger("t", "cron", "0 2 * * *", "Europe/Paris"), None),
    (Trigger("t", "fileSystem", path="/srv/flags/ready"), None),
])
def test_unusable_triggers_are_named(trigger: Trigger, problem: str | None) -> None:
    found = trigger_problem(trigger)
    assert (found is None) if problem is None else (found is not None and problem in found)
