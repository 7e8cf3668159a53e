"""Signed Zoom webhooks through the real app and its in-app SAQ worker, down to the attendance report.

One meeting: Ann joins, leaves, rejoins and adds a phone for a while, and is still there when the meeting ends; Bob
comes late and leaves early. Zoom's retries come twice; a forged signature and a replay from 10 minutes ago are
refused and change nothing; a waiting-room event is stored but is not attendance.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import msgspec
import pytest
from mediasvc_zoom.signature import sign
from mediasvc_zoom.tables import LiveSession, WebhookEvent

from mediasvc.app import create_app
from mediasvc.auth import create_api_key
from mediasvc.tables import Event
from tests.conftest import serve_in_process
from tests.zoom_fake_api import FakeZoom

SECRET = "zoom-webhook-secret-token"
WEBHOOK = "/integrations/zoom/webhook"
S = (datetime.now(timezone.utc) - timedelta(hours=3)).replace(second=0, microsecond=0)


def at(minutes: float) -> datetime:
    return S + timedelta(minutes=minutes)


def zoom_iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- Zoom's webhook shapes (https://developers.zoom.us/docs/api/meetings/events/) ------------------------------


def meeting_event(event: str, meeting_id: str, **obj: Any) -> dict[str, Any]:
    return {"event": event, "event_ts": int(time.time() * 1000),
            "payload": {"account_id": "acct-123", "object": {"id": meeting_id, "uuid": f"uuid-{meeting_id}==",
                                                           "host_id": "z8yCxjabcd", "topic": "Week 3", "type": 2,
                                                           **obj}}}


def participant_event(event: str, meeting_id: str, minutes: float, *, name: str, uuid_: str, email: str = "",
                      zoom_id: str = "", user_id: str = "16778240") -> dict[str, Any]:
    field = "leave_time" if event.endswith("_left") else "join_time"
    person = {"user_id": user_id, "user_name": name, "id": zoom_id, "participant_uuid": uuid_, "email": email,
              field: zoom_iso(at(minutes))}
    if event.endswith("_left"):
        person["leave_reason"] = "left the meeting"
    return meeting_event(event, meeting_id, participant=person)


def signed(body: dict[str, Any], *, secret: str = SECRET, age_seconds: int = 0) -> tuple[bytes, dict[str, str]]:
    raw = msgspec.json.encode(body)
    timestamp = str(int(time.time()) - age_seconds)
    return raw, {"content-type": "application/json", "x-zm-request-timestamp": timestamp,
                 "x-zm-signature": sign(secret, timestamp, raw)}


async def post_signed(http: httpx.AsyncClient, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    raw, headers = signed(body, **kwargs)
    return await http.post(WEBHOOK, content=raw, headers=headers)


async def wait_processed(meeting_id: str, timeout: float = 20.0) -> None:
    """Until the worker has processed every stored event of a known session."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = await WebhookEvent.count().where(WebhookEvent.zoom_meeting_id == meeting_id,
                                                   WebhookEvent.live_session.is_not_null(),
                                                   WebhookEvent.processed_at.is_null())
        if pending == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"webhook jobs for meeting {meeting_id} not processed in {timeout}s")


# --- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_zoom():
    fake = FakeZoom()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
async def zoom_app(make_settings, fake_zoom):
    settings = make_settings(plugins={"zoom": fake_zoom.settings(webhook_secret_token=SECRET)},
                             run_worker_in_app=True, **{"queue.name": f"zoom-{uuid.uuid4().hex[:8]}"})
    async with serve_in_process(create_app(settings)) as http:
        key, _ = await create_api_key(f"zoom-{uuid.uuid4().hex[:8]}")
        http.headers["Authorization"] = f"Bearer {key}"
        yield http


async def schedule(http: httpx.AsyncClient, name: str = "Week 3 seminar", start: datetime = S,
                   minutes: int = 60) -> dict[str, Any]:
    response = await http.post("/api/v1/live-sessions", json={
        "name": name, "start_time": start.isoformat(), "duration_minutes": minutes, "lti_context_id": "course-1"})
    assert response.status_code == 201, response.text
    return response.json()


# --- tests -----------------------------------------------------------------------------------------------------


async def test_url_validation_answers_the_hmac_of_the_plain_token(zoom_app):
    import hashlib
    import hmac

    body = {"event": "endpoint.url_validation", "event_ts": 1, "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}}
    response = await post_signed(zoom_app, body)
    assert response.status_code == 200
    expected = hmac.new(SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert response.json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}
    forged = await post_signed(zoom_app, body, secret="not-the-secret")
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "unauthorized"


async def test_bad_requests_get_the_error_envelope(zoom_app):
    unsigned = await zoom_app.post(WEBHOOK, json={"event": "meeting.started"})
    assert unsigned.status_code == 401 and "x-zm-signature" in unsigned.json()["error"]["message"]
    raw = b"{not json"
    timestamp = str(int(time.time()))
    garbage = await zoom_app.post(WEBHOOK, content=raw, headers={"x-zm-request-timestamp": timestamp,
                                                                 "x-zm-signature": sign(SECRET, timestamp, raw)})
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "bad_request"
    future = await post_signed(zoom_app, {"event": "meeting.started"}, age_seconds=-400)
    assert future.status_code == 401


async def test_webhook_sequence_gives_exact_attendance(zoom_app):
    session = await schedule(zoom_app)
    mid = session["zoom_meeting_id"]
    ann = {"name": "Ann Lee", "email": "ann@example.com"}
    bob = {"name": "Bob", "zoom_id": "bob-zoom-id"}
    J, L = "meeting.participant_joined", "meeting.participant_left"
    sequence = [
        meeting_event("meeting.started", mid, start_time=zoom_iso(at(0))),
        participant_event(J, mid, 2, uuid_="ann-laptop", **ann),
        participant_event(J, mid, 10, uuid_="bob-1", user_id="16778241", **bob),
        participant_event(L, mid, 20, uuid_="ann-laptop", **ann),
        participant_event(J, mid, 25, uuid_="ann-laptop", **ann),  # rejoin
        participant_event(J, mid, 30, uuid_="ann-phone", user_id="16778242", **ann),  # a second device
        participant_event(L, mid, 40, uuid_="ann-phone", user_id="16778242", **ann),
        participant_event(L, mid, 45, uuid_="bob-1", user_id="16778241", **bob),
        meeting_event("meeting.participant_joined_waiting_room", mid,
                      participant={"user_name": "Eve", "participant_uuid": "eve-1", "date_time": zoom_iso(at(5))}),
    ]
    statuses = [(await post_signed(zoom_app, body)).json()["status"] for body in sequence]
    assert statuses == ["accepted"] * len(sequence)
    for retried in (sequence[1], sequence[7]):  # Zoom retries: same body, new delivery
        response = await post_signed(zoom_app, retried)
        assert response.status_code == 200 and response.json()["status"] == "duplicate"
    await wait_processed(mid)

    live = (await zoom_app.get(f"/api/v1/live-sessions/{session['id']}/attendance")).json()
    assert live["status"] == "live" and live["present_now"] == 1
    assert [(p["name"], p["present"]) for p in live["participants"]] == [("Ann Lee", True), ("Bob", False)]

    before = (await zoom_app.get(f"/api/v1/live-sessions/{session['id']}/attendance")).json()["participants"]
    before_events = await Event.count().where(Event.type == "attendance.updated")
    carol = participant_event(J, mid, 12, uuid_="carol-1", name="Carol", email="carol@example.com")
    forged = await post_signed(zoom_app, carol, secret="guessed-secret")
    assert forged.status_code == 401 and forged.json()["error"]["message"] == "Invalid x-zm-signature"
    dave = participant_event(J, mid, 14, uuid_="dave-1", name="Dave", email="dave@example.com")
    replayed = await post_signed(zoom_app, dave, age_seconds=600)  # correctly signed, 10 minutes old
    assert replayed.status_code == 401 and "window" in replayed.json()["error"]["message"]
    await asyncio.sleep(0.3)
    assert await WebhookEvent.count().where(WebhookEvent.zoom_meeting_id == mid) == len(sequence)
    assert await Event.count().where(Event.type == "attendance.updated") == before_events
    after = (await zoom_app.get(f"/api/v1/live-sessions/{session['id']}/attendance")).json()["participants"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "total_seconds"} for r in rows]  # noqa: E731
    assert strip(after) == strip(before)  # Ann's open interval grows with the clock, nothing else moves

    ended = await post_signed(zoom_app, meeting_event("meeting.ended", mid, start_time=zoom_iso(at(0)),
                                                      end_time=zoom_iso(at(60))))
    assert ended.json()["status"] == "accepted"
    await wait_processed(mid)

    report = (await zoom_app.get(f"/api/v1/live-sessions/{session['id']}/attendance")).json()
    assert (report["status"], report["present_now"]) == ("ended", 0)
    ann_row, bob_row = report["participants"]
    assert ann_row["participant_key"] == "email:ann@example.com"
    assert [(i["start"], i["end"]) for i in ann_row["intervals"]] == [
        (zoom_iso(at(2)), zoom_iso(at(20))), (zoom_iso(at(25)), zoom_iso(at(60)))]  # closed at the meeting's end
    assert ann_row["total_seconds"] == (18 + 35) * 60
    assert (ann_row["attendance_percent"], ann_row["late"], ann_row["left_early"]) == (88.3, False, False)
    assert bob_row["participant_key"] == "zoom:bob-zoom-id"
    assert bob_row["total_seconds"] == 35 * 60
    assert (bob_row["attendance_percent"], bob_row["late"], bob_row["left_early"]) == (58.3, True, True)
    assert (bob_row["first_join"], bob_row["last_leave"]) == (zoom_iso(at(10)), zoom_iso(at(45)))

    response = await zoom_app.get(f"/api/v1/live-sessions/{session['id']}/attendance", params={"format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == \
        f'attachment; filename="attendance-week-3-seminar-{S:%Y-%m-%d}.csv"'
    assert response.content.startswith(b"\xef\xbb\xbf")
    text = response.content[3:].decode()
    assert text.count("\r\n") == 3 and "\n" not in text.replace("\r\n", "")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [(r["name"], r["total_minutes"], r["attendance_percent"], r["late"], r["left_early"]) for r in rows] == [
        ("Ann Lee", "53.00", "88.3", "false", "false"), ("Bob", "35.00", "58.3", "true", "true")]
    assert rows[0]["intervals"] == f"{zoom_iso(at(2))}/{zoom_iso(at(20))}; {zoom_iso(at(25))}/{zoom_iso(at(60))}"

    row = await LiveSession.select().where(LiveSession.id == uuid.UUID(session["id"])).first()
    assert (row["started_at"], row["ended_at"]) == (at(0), at(60))
    emitted = await Event.select(Event.payload).where(Event.type == "attendance.updated").order_by(
        Event.created_at, ascending=False).first().output(load_json=True)
    assert emitted["payload"]["live_session_id"] == session["id"]
    assert emitted["payload"]["trigger"] == "meeting.ended" and emitted["payload"]["present_now"] == 0


async def test_events_for_unknown_meetings_are_stored_and_ignored(zoom_app):
    body = participant_event("meeting.participant_joined", "99999999999", 1, name="X", uuid_="x-1")
    response = await post_signed(zoom_app, body)
    assert response.status_code == 200 and response.json() == {"status": "ignored",
                                                               "event": "meeting.participant_joined"}


async def test_participants_are_matched_to_lti_users_by_email(zoom_app):
    pytest.importorskip("mediasvc_lti.users")
    from mediasvc.auth import get_or_create_tenant

    slug = f"zoom-lti-{uuid.uuid4().hex[:8]}"
    key, _ = await create_api_key(slug)
    headers = {"Authorization": f"Bearer {key}"}
    tenant_id = await get_or_create_tenant(slug)
    user_id = uuid.uuid4()
    await LiveSession.raw(  # an LTI user as a launch leaves it (the LTI plugin's table)
        "INSERT INTO lti_users (id, tenant, issuer, sub, email, name, roles, role) "
        "VALUES ({}, {}, 'https://lms.example.com', 'sub-ann', 'Ann@Example.com', 'Ann Lee (LMS)', '[]'::jsonb, "
        "'learner')", user_id, tenant_id)
    created = await zoom_app.post("/api/v1/live-sessions", headers=headers, json={
        "name": "Matched", "start_time": S.isoformat(), "duration_minutes": 60})
    mid = created.json()["zoom_meeting_id"]
    for body in (participant_event("meeting.participant_joined", mid, 1, name="Ann", uuid_="a1",
                                   email="ann@example.com"),
                 participant_event("meeting.participant_joined", mid, 2, name="Guest", uuid_="g1")):
        assert (await post_signed(zoom_app, body)).json()["status"] == "accepted"
    await wait_processed(mid)
    report = (await zoom_app.get(f"/api/v1/live-sessions/{created.json()['id']}/attendance",
                                 headers=headers)).json()
    assert [(p["participant_key"], p["matched_user_id"], p["matched_user_name"]) for p in report["participants"]] \
        == [("email:ann@example.com", str(user_id), "Ann Lee (LMS)"), ("uuid:g1", None, None)]


async def test_a_cancelled_session_stays_cancelled_when_zoom_reports_a_start(zoom_app):
    session = await schedule(zoom_app, name="Called off")
    assert (await zoom_app.post(f"/api/v1/live-sessions/{session['id']}/cancel")).json()["status"] == "cancelled"
    mid = session["zoom_meeting_id"]
    assert (await post_signed(zoom_app, meeting_event("meeting.started", mid, start_time=zoom_iso(at(0))))
            ).json()["status"] == "accepted"
    await wait_processed(mid)
    assert (await zoom_app.get(f"/api/v1/live-sessions/{session['id']}")).json()["status"] == "cancelled"
