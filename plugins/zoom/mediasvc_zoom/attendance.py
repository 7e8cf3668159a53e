"""Attendance from join/leave events: pure functions, no I/O.

Each connection (a device: Zoom's ``participant_uuid`` or per-meeting ``user_id``) is paired join→leave on its own;
a participant's connections are then merged, so a rejoin or a second device never counts time twice. Open
intervals are closed at the meeting's end when it has ended, else counted up to ``now`` and reported as present.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from itertools import groupby
from typing import Literal

import msgspec


class PresenceEvent(msgspec.Struct, frozen=True):
    kind: Literal["join", "leave"]
    at: datetime
    participant_key: str  # who: merged across devices
    device: str  # which connection: paired join→leave
    name: str = ""
    email: str = ""


class Interval(msgspec.Struct):
    start: datetime
    end: datetime | None  # None: still in the meeting


class Presence(msgspec.Struct):
    participant_key: str
    name: str
    email: str
    intervals: list[Interval]  # merged, ordered, non-overlapping


class Schedule(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime
    late_after: timedelta = timedelta(minutes=5)
    early_leave: timedelta = timedelta(minutes=5)


class ParticipantAttendance(msgspec.Struct):
    participant_key: str
    name: str
    email: str
    intervals: list[Interval]
    total_seconds: float
    first_join: datetime
    last_leave: datetime | None  # None while present
    present: bool
    late: bool
    left_early: bool
    attendance_percent: float  # of the scheduled duration, capped at 100
    matched_user_id: str | None = None
    matched_user_name: str | None = None


def device_intervals(events: Iterable[PresenceEvent]) -> list[tuple[str, Interval]]:
    """Pair each device's joins and leaves in time order: ``(participant_key, interval)`` pairs. A join while
    connected and a leave while not connected (a lost or repeated webhook) are ignored."""
    pairs: list[tuple[str, Interval]] = []
    by_device = sorted(events, key=lambda e: (e.participant_key, e.device, e.at))
    for (key, _device), device_events in groupby(by_device, key=lambda e: (e.participant_key, e.device)):
        open_since: datetime | None = None
        for _at, same_instant in groupby(device_events, key=lambda e: e.at):
            batch = list(same_instant)
            # at one instant, a connected device leaves first (then rejoins); a disconnected one joins first
            batch.sort(key=lambda e: (e.kind == "join") if open_since is not None else (e.kind == "leave"))
            for event in batch:
                if event.kind == "join" and open_since is None:
                    open_since = event.at
                elif event.kind == "leave" and open_since is not None:
                    pairs.append((key, Interval(open_since, event.at)))
                    open_since = None
        if open_since is not None:
            pairs.append((key, Interval(open_since, None)))
    return pairs


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of intervals: overlapping or touching ones become one; an open one absorbs all that start later."""
    merged: list[Interval] = []
    for interval in sorted(intervals, key=lambda i: i.start):
        last = merged[-1] if merged else None
        if last is not None and (last.end is None or interval.start <= last.end):
            if last.end is not None and (interval.end is None or interval.end > last.end):
                last.end = interval.end
            continue
        merged.append(Interval(interval.start, interval.end))
    return merged


def presences(events: Iterable[PresenceEvent], *, ended_at: datetime | None = None) -> list[Presence]:
    """Every participant's merged intervals; with ``ended_at`` (the meeting ended) open intervals close there."""
    events = list(events)
    names: dict[str, tuple[str, str]] = {}
    for event in sorted(events, key=lambda e: e.at):  # the latest non-empty name and email win
        name, email = names.get(event.participant_key, ("", ""))
        names[event.participant_key] = (event.name or name, event.email or email)
    by_key: dict[str, list[Interval]] = {}
    for key, interval in device_intervals(events):
        if interval.end is None and ended_at is not None:
            interval = Interval(interval.start, max(ended_at, interval.start))
        by_key.setdefault(key, []).append(interval)
    return [Presence(key, *names[key], merge(intervals)) for key, intervals in sorted(by_key.items())]


def summarize(presence: Presence, schedule: Schedule, *, now: datetime) -> ParticipantAttendance:
    """Totals and flags for one participant against the schedule; open intervals count up to ``now``."""
    intervals = presence.intervals
    total = sum(((i.end or max(now, i.start)) - i.start for i in intervals), timedelta())
    present = intervals[-1].end is None
    last_leave = None if present else intervals[-1].end
    first_join = intervals[0].start
    scheduled = (schedule.end - schedule.start).total_seconds()
    percent = 100.0 if scheduled <= 0 else min(100.0, total.total_seconds() / scheduled * 100)
    return ParticipantAttendance(
        participant_key=presence.participant_key, name=presence.name, email=presence.email,
        intervals=intervals, total_seconds=total.total_seconds(), first_join=first_join, last_leave=last_leave,
        present=present, late=first_join > schedule.start + schedule.late_after,
        left_early=last_leave is not None and last_leave < schedule.end - schedule.early_leave,
        attendance_percent=round(percent, 1),
    )


def attendance(presence_list: Iterable[Presence], schedule: Schedule, *,
               now: datetime) -> list[ParticipantAttendance]:
    """The report rows, earliest arrival first."""
    rows = [summarize(p, schedule, now=now) for p in presence_list if p.intervals]
    return sorted(rows, key=lambda r: (r.first_join, r.participant_key))
