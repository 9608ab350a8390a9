"""When a registered workflow's triggers fire: ``cron`` schedules in an IANA time zone and
``fileSystem`` flag files, with the ``missedFires`` policy after downtime. Pure logic: the
caller gives the clock and the recorded last fire.

Cron schedules are five fields, evaluated on the zone's wall clock: a time the clocks skip
(spring forward) fires when the clocks reach the first minute after the gap, once even if
several scheduled times fall into the gap; a time the clocks pass twice (fall back) fires
once, at its first occurrence.

Missed fires (times at or before now that were not recorded, after a downtime): ``once``
(default) runs one execution for the latest missed time; ``skip`` runs none and waits for the
next time (a time counts as missed once it is more than :data:`MISSED_GRACE` seconds old);
``all`` runs one execution for each missed time, the latest :data:`MAX_MISSED` of them.

A ``fileSystem`` trigger with ``action: create`` fires when its flag file appears. The file's
signature (inode, size, modification time) is recorded with the fire; it fires again when the
signature changes, or when the file disappeared (recorded by the caller) and came back.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from quorus.workflow.model import Trigger

#: Fires ``all`` runs at most, after a downtime.
MAX_MISSED = 100
#: A scheduled time older than this (seconds) when first seen is missed, not due.
MISSED_GRACE = 60.0
#: The longest gap a zone's clocks skip, in minutes (zones skip at most two hours).
_LONGEST_GAP = 180
#: Iterating backwards stops after this many scheduled times that fell into a gap.
_MAX_STEPS = 10 * MAX_MISSED


#: The five fields of a cron schedule and what each accepts.
_CRON_FIELDS = (("minute", "0-59"), ("hour", "0-23"), ("day of month", "1-31"),
                ("month", "1-12 or jan-dec"), ("weekday", "0-7 or sun-sat"))


def trigger_problems(trigger: Trigger) -> list[tuple[str, str]]:
    """Why ``trigger`` cannot be used, as ``(field, message)`` pairs naming the trigger and
    the field (``schedule``, ``timezone``, ``path``, ``action`` or ``type``); empty when it can.
    The one check of triggers: validation reports these at the field's line, registering
    refuses a workflow with any."""
    named = f"trigger {trigger.name!r}"
    if trigger.type == "cron":
        found: list[tuple[str, str]] = []
        problem = _schedule_problem(trigger.schedule)
        if problem:
            found.append(("schedule", f"{named}: schedule {trigger.schedule!r} {problem}"))
        try:
            ZoneInfo(trigger.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            found.append(("timezone", f"{named}: time zone {trigger.timezone!r} is not an IANA "
                                      "zone such as 'Europe/Paris' or 'UTC'"))
        return found
    if trigger.type == "fileSystem":
        found = []
        if not trigger.path or not os.path.isabs(trigger.path):
            found.append(("path", f"{named}: path {trigger.path!r} must be absolute (a flag "
                                  "file every controller can see)"))
        if trigger.action != "create":
            found.append(("action", f"{named}: action {trigger.action!r} is not supported "
                                    "(only 'create')"))
        return found
    return [("type", f"{named}: type {trigger.type!r} is not cron or fileSystem")]


def trigger_problem(trigger: Trigger) -> str | None:
    """Every reason ``trigger`` cannot be used in one line (see :func:`trigger_problems`), or
    ``None``."""
    found = trigger_problems(trigger)
    return "; ".join(message for _, message in found) if found else None


def _schedule_problem(schedule: str | None) -> str | None:
    """What is wrong with a cron ``schedule`` (to follow its quoted text), or ``None``."""
    fields = schedule.split() if schedule else []
    if len(fields) != 5:
        return "must have five fields (minute hour day month weekday), e.g. '0 2 * * *'"
    if croniter.is_valid(schedule):
        try:
            # A schedule whose day never comes (30 February) fires never.
            croniter(schedule, datetime(2000, 1, 1)).get_next(datetime)
        except CroniterBadDateError:
            return "never fires: no date matches its day and month"
        return None
    for index, (field, accepted) in enumerate(_CRON_FIELDS):
        alone = ["*"] * 5
        alone[index] = fields[index]
        if not croniter.is_valid(" ".join(alone)):
            return (f"is not a cron schedule: its {field} field {fields[index]!r} must be "
                    f"{accepted} (one, a list, a range or a step of them, or '*')")
    return "is not a cron schedule of five fields (minute hour day month weekday)"


# -- cron ---------------------------------------------------------------------------------------


def _instant(local: datetime, zone: ZoneInfo) -> float:
    """The instant wall time ``local`` (naive) first happens in ``zone``; a wall time the
    clocks skip maps to the first minute after the gap."""
    for minutes in range(_LONGEST_GAP + 1):
        wall = local + timedelta(minutes=minutes)
        aware = wall.replace(tzinfo=zone, fold=0)
        if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
            return aware.timestamp()
    raise ValueError(f"{local} does not exist in {zone.key}")  # no zone has such a gap


def _local(at: float, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(at, zone).replace(tzinfo=None)


def next_fire(trigger: Trigger, after: float) -> float:
    """The first scheduled instant strictly after ``after``."""
    zone = ZoneInfo(trigger.timezone)
    times = croniter(trigger.schedule, _local(after, zone) - timedelta(minutes=_LONGEST_GAP))
    while True:
        instant = _instant(times.get_next(datetime), zone)
        if instant > after:
            return instant


def fires_between(trigger: Trigger, after: float, until: float, limit: int) -> list[float]:
    """The latest ``limit`` scheduled instants in ``(after, until]``, oldest first."""
    zone = ZoneInfo(trigger.timezone)
    # Start a little past ``until``: a wall time in a gap fires after the gap, that is after
    # its own wall-clock reading.
    times = croniter(trigger.schedule, _local(until, zone) + timedelta(minutes=_LONGEST_GAP))
    found: list[float] = []
    for _ in range(_MAX_STEPS + limit):
        instant = _instant(times.get_prev(datetime), zone)
        if instant <= after:
            break
        if instant <= until and instant not in found:
            found.append(instant)
            if len(found) >= limit:
                break
    return sorted(found)


def due_fires(trigger: Trigger, last_fire: float | None, registered_at: float, now: float,
              *, grace: float = MISSED_GRACE) -> list[float]:
    """The scheduled instants to fire now, oldest first, given the last one recorded (or the
    registration time when it never fired) and the trigger's ``missedFires`` policy."""
    if trigger.type != "cron" or not trigger.enabled:
        return []
    since = last_fire if last_fire is not None else registered_at
    policy = trigger.missed_fires
    times = fires_between(trigger, since, now, MAX_MISSED if policy == "all" else 1)
    if policy == "skip":
        return [t for t in times if now - t <= grace]
    return times


# -- fileSystem ----------------------------------------------------------------------------------


def file_signature(path: str) -> str | None:
    """What identifies this version of the flag file (``None`` when there is none)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"


def file_fires(recorded: str | None, current: str | None) -> bool:
    """Whether a flag file seen with ``current`` fires, ``recorded`` being the signature of
    the last fire (``None`` once the file was seen gone, or before any fire)."""
    return current is not None and current != recorded


def fire_execution_id(registration: str, trigger: str, scheduled_at: float) -> str:
    """The id of the execution a fire starts: the same fire gives the same id everywhere."""
    seconds, millis = divmod(round(scheduled_at * 1000), 1000)
    stamp = datetime.fromtimestamp(seconds, UTC)
    return f"{registration}-{trigger}-{stamp:%Y%m%dT%H%M%S}{millis:03d}Z"


__all__ = [
    "MAX_MISSED",
    "MISSED_GRACE",
    "due_fires",
    "file_fires",
    "file_signature",
    "fire_execution_id",
    "fires_between",
    "next_fire",
    "trigger_problem",
    "trigger_problems",
]
