"""The attendance module (pure): pairing per device, merging rejoins and devices, closing at meeting end, flags."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from mediasvc_zoom.attendance import Interval, PresenceEvent, Schedule, attendance, merge, presences
from mediasvc_zoom.zoom_events import dedupe_key, participant_key, presence_event

S = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
SCHEDULE = Schedule(start=S, end=S + timedelta(minutes=60))


def at(minutes: float) -> datetime:
    return S + timedelta(minutes=minutes)


def join(who: str, minutes: float, device: str = "d1") -> PresenceEvent:
    return PresenceEvent(kind="join", at=at(minutes), participant_key=who, device=device, name=who.title())


def leave(who: str, minutes: float, device: str = "d1") -> PresenceEvent:
    return PresenceEvent(kind="leave", at=at(minutes), participant_key=who, device=device, name=who.title())


def test_rejoin_gives_two_intervals_and_their_sum():
    [p] = presences([join("ann", 0), leave("ann", 10), join("ann", 15), leave("ann", 40)])
    assert [(i.start, i.end) for i in p.intervals] == [(at(0), at(10)), (at(15), at(40))]
    [row] = attendance([p], SCHEDULE, now=at(90))
    assert row.total_seconds == 35 * 60
    assert (row.first_join, row.last_leave, row.present) == (at(0), at(40), False)
    assert row.attendance_percent == round(35 / 60 * 100, 1)
    assert row.left_early and not row.late


def test_overlapping_devices_are_counted_once():
    events = [join("ann", 0, "laptop"), join("ann", 5, "phone"), leave("ann", 20, "laptop"),
              leave("ann", 30, "phone")]
    [p] = presences(events)
    assert [(i.start, i.end) for i in p.intervals] == [(at(0), at(30))]


def test_events_in_any_order_give_the_same_answer():
    events = [join("ann", 0), leave("ann", 10), join("ann", 15), leave("ann", 40)]
    assert presences(events) == presences(list(reversed(events)))


def test_leave_and_rejoin_at_the_same_instant_on_one_device():
    [p] = presences([join("ann", 0), join("ann", 10), leave("ann", 10), leave("ann", 20)])
    assert [(i.start, i.end) for i in p.intervals] == [(at(0), at(20))]  # touching intervals merge


def test_repeated_join_and_stray_leave_are_ignored():
    [p] = presences([leave("ann", 1), join("ann", 2), join("ann", 3), leave("ann", 12), leave("ann", 13)])
    assert [(i.start, i.end) for i in p.intervals] == [(at(2), at(12))]


def test_open_interval_closes_at_meeting_end_or_counts_up_to_now():
    events = [join("ann", 3), join("bob", 20)]
    ended = presences(events, ended_at=at(50))
    assert [(p.participant_key, p.intervals[0].end) for p in ended] == [("ann", at(50)), ("bob", at(50))]
    live = attendance(presences(events), SCHEDULE, now=at(30))
    assert [(r.participant_key, r.present, r.total_seconds, r.last_leave) for r in live] == [
        ("ann", True, 27 * 60, None), ("bob", True, 10 * 60, None)]
    assert [r.late for r in live] == [False, True]  # bob came 20 min after the start, past the 5 min grace
    assert not any(r.left_early for r in live)  # still there


def test_percentage_is_capped_and_flags_use_the_grace_periods():
    [row] = attendance(presences([join("ann", -10), leave("ann", 56)]), SCHEDULE, now=at(90))
    assert row.attendance_percent == 100.0 and not row.late and not row.left_early  # 4 min early: within grace
    [row] = attendance(presences([join("ann", 5.5), leave("ann", 54)]), SCHEDULE, now=at(90))
    assert row.late and row.left_early


def test_merge_open_interval_absorbs_later_ones():
    merged = merge([Interval(at(0), at(5)), Interval(at(3), None), Interval(at(10), at(20))])
    assert [(i.start, i.end) for i in merged] == [(at(0), None)]


def _joined(participant: dict, when: str = "2026-11-25T10:02:00Z") -> dict:
    return {"event": "meeting.participant_joined", "event_ts": 1764064920000,
            "payload": {"account_id": "acct", "object": {"id": "85000000001", "uuid": "u==", "participant": {
                "join_time": when, **participant}}}}


def test_zoom_payload_identity_and_dedupe_keys():
    assert participant_key({"email": " Ann@Example.com ", "id": "z1"}) == "email:ann@example.com"
    assert participant_key({"id": "z1", "participant_uuid": "p1"}) == "zoom:z1"
    assert participant_key({"participant_uuid": "p1", "user_id": "16778240"}) == "uuid:p1"
    assert participant_key({"user_id": "16778240"}) == "user:16778240"
    body = _joined({"user_name": "Ann", "email": "ann@example.com", "participant_uuid": "p1", "user_id": "1"})
    event = presence_event(body)
    assert (event.kind, event.at, event.participant_key, event.device) == (
        "join", at(2), "email:ann@example.com", "p1")
    assert dedupe_key(body) == dedupe_key(dict(body))  # a retry
    assert dedupe_key(body) != dedupe_key(_joined({"participant_uuid": "p1"}, "2026-11-25T10:30:00Z"))  # a rejoin
    assert presence_event({"event": "meeting.participant_joined_waiting_room", "payload": body["payload"]}) is None
