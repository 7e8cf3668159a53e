"""Live sessions CRUD against a fake Zoom speaking its REST shapes over real HTTP on loopback."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timezone

import pytest

from mediasvc.app import create_app
from mediasvc.auth import create_api_key
from tests.conftest import serve_in_process
from tests.zoom_fake_api import CLIENT_ID, CLIENT_SECRET, FakeZoom

START = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def fake_zoom():
    fake = FakeZoom()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
async def served(make_settings, fake_zoom):
    settings = make_settings(plugins={"zoom": fake_zoom.settings(webhook_secret_token="s")})
    async with serve_in_process(create_app(settings)) as http:
        key, _ = await create_api_key(f"live-{uuid.uuid4().hex[:8]}")
        http.headers["Authorization"] = f"Bearer {key}"
        yield http


async def test_create_list_get_update_cancel(served, fake_zoom):
    http = served
    created = await http.post("/api/v1/live-sessions", json={
        "name": "Office hours", "start_time": "2026-12-01T10:00:00+01:00", "duration_minutes": 45,
        "timezone": "Europe/Paris", "agenda": "Questions on week 3", "lti_context_id": "ctx-42"})
    assert created.status_code == 201, created.text
    session = created.json()
    assert (session["status"], session["scheduled_start"], session["duration_minutes"]) == (
        "scheduled", "2026-12-01T09:00:00Z", 45)
    assert session["scheduled_end"] == "2026-12-01T09:45:00Z"
    meeting = fake_zoom.meetings[session["zoom_meeting_id"]]
    assert session["join_url"] == meeting["join_url"] and session["zoom_uuid"] == meeting["uuid"]
    create_call = next(r for r in fake_zoom.requests if r["method"] == "POST" and r["path"].startswith("/v2/"))
    assert create_call["path"] == "/v2/users/me/meetings"
    assert create_call["body"] | {"settings": None} == {
        "topic": "Office hours", "type": 2, "start_time": "2026-12-01T09:00:00Z", "duration": 45,
        "timezone": "Europe/Paris", "agenda": "Questions on week 3", "settings": None}
    token_call = next(r for r in fake_zoom.requests if r["path"] == "/oauth/token")
    assert token_call["query"] == {"grant_type": ["account_credentials"], "account_id": ["acct-123"]}
    assert token_call["headers"]["Authorization"] == "Basic " + base64.b64encode(
        f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()

    other = (await http.post("/api/v1/live-sessions", json={
        "name": "Lecture", "start_time": START.isoformat(), "duration_minutes": 90})).json()
    listed = (await http.get("/api/v1/live-sessions")).json()
    assert [s["id"] for s in listed["items"]] == [other["id"], session["id"]]
    assert [s["id"] for s in (await http.get("/api/v1/live-sessions", params={"lti_context_id": "ctx-42"})
                              ).json()["items"]] == [session["id"]]
    page = (await http.get("/api/v1/live-sessions", params={"limit": 1})).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = (await http.get("/api/v1/live-sessions", params={"limit": 1, "cursor": page["next_cursor"]})).json()
    assert [s["id"] for s in rest["items"]] == [session["id"]]
    assert (await http.get(f"/api/v1/live-sessions/{session['id']}")).json() == session

    updated = await http.patch(f"/api/v1/live-sessions/{session['id']}", json={"name": "Office hours (moved)",
                                                                               "duration_minutes": 30})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["name"], updated.json()["scheduled_end"]) == ("Office hours (moved)",
                                                                         "2026-12-01T09:30:00Z")
    patch_call = [r for r in fake_zoom.requests if r["method"] == "PATCH"][-1]
    assert patch_call["path"] == f"/v2/meetings/{session['zoom_meeting_id']}"
    assert patch_call["body"] == {"topic": "Office hours (moved)", "start_time": "2026-12-01T09:00:00Z",
                                  "duration": 30}
    assert meeting["topic"] == "Office hours (moved)"

    cancelled = await http.post(f"/api/v1/live-sessions/{session['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert session["zoom_meeting_id"] not in fake_zoom.meetings
    again = await http.post(f"/api/v1/live-sessions/{session['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"  # idempotent
    refused = await http.patch(f"/api/v1/live-sessions/{session['id']}", json={"name": "x"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"

    # every Zoom call above used one token, fetched once and sent as the bearer
    assert fake_zoom.token_requests == 1
    assert all(r["headers"]["Authorization"] == f"Bearer {next(iter(fake_zoom.tokens))}"
               for r in fake_zoom.requests if r["path"].startswith("/v2/"))


async def test_zoom_refusals_are_a_clear_502(served, fake_zoom):
    fake_zoom.fail_next.append((400, {"code": 300, "message": "Invalid meeting start time."}))
    response = await served.post("/api/v1/live-sessions", json={
        "name": "Bad", "start_time": START.isoformat(), "duration_minutes": 30})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "zoom_error" and "Invalid meeting start time." in error["message"]
    assert error["details"] == {"zoom_status": 400, "zoom_code": 300}
    assert (await served.get("/api/v1/live-sessions")).json()["items"] == []  # nothing half-created

    ok = (await served.post("/api/v1/live-sessions", json={
        "name": "Good", "start_time": START.isoformat(), "duration_minutes": 30})).json()
    fake_zoom.meetings.pop(ok["zoom_meeting_id"])  # deleted on Zoom's side
    gone = await served.patch(f"/api/v1/live-sessions/{ok['id']}", json={"name": "Renamed"})
    assert gone.status_code == 502 and "Meeting does not exist" in gone.json()["error"]["message"]
    cancelled = await served.post(f"/api/v1/live-sessions/{ok['id']}/cancel")  # already gone: still cancelled
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


async def test_bad_or_missing_credentials(make_settings, fake_zoom):
    body = {"name": "x", "start_time": START.isoformat(), "duration_minutes": 30}
    wrong = make_settings(plugins={"zoom": fake_zoom.settings(client_secret="wrong")})
    async with serve_in_process(create_app(wrong)) as http:
        key, _ = await create_api_key(f"live-{uuid.uuid4().hex[:8]}")
        response = await http.post("/api/v1/live-sessions", headers={"Authorization": f"Bearer {key}"}, json=body)
        assert response.status_code == 502
        assert "Invalid client_id or client_secret" in response.json()["error"]["message"]
    unset = make_settings()  # no plugins.zoom section at all
    async with serve_in_process(create_app(unset)) as http:
        response = await http.post("/api/v1/live-sessions", headers={"Authorization": f"Bearer {key}"}, json=body)
        assert response.status_code == 503 and "credentials" in response.json()["error"]["message"]
    assert not [r for r in fake_zoom.requests if r["path"].startswith("/v2/")]


async def test_token_revoked_by_zoom_is_replaced_once(served, fake_zoom):
    body = {"name": "A", "start_time": START.isoformat(), "duration_minutes": 30}
    assert (await served.post("/api/v1/live-sessions", json=body)).status_code == 201
    fake_zoom.tokens.clear()  # Zoom no longer accepts the cached token
    assert (await served.post("/api/v1/live-sessions", json=body)).status_code == 201
    assert fake_zoom.token_requests == 2


BAD_BODIES = [
    {"name": "x", "start_time": "2026-12-01T09:00:00", "duration_minutes": 30},  # no UTC offset
    {"name": "x", "start_time": START.isoformat(), "duration_minutes": 0},
    {"name": "x", "start_time": START.isoformat(), "duration_minutes": 30, "timezone": "Mars/Olympus"},
    {"name": "", "start_time": START.isoformat(), "duration_minutes": 30},
    {"name": "x", "start_time": START.isoformat(), "duration_minutes": 30, "color": "red"},
    {"name": "x", "start_time": START.isoformat(), "duration_minutes": 30, "host": "../users"},
]


async def test_bad_input_is_refused_before_zoom_is_called(served, fake_zoom):
    for body in BAD_BODIES:
        response = await served.post("/api/v1/live-sessions", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["code"] == "validation_failed"
    bad_json = await served.post("/api/v1/live-sessions", content=b"{oops",
                                 headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    assert not [r for r in fake_zoom.requests if r["path"].startswith("/v2/")]
    assert (await served.get("/api/v1/live-sessions/not-a-uuid")).status_code in (404, 422)
    assert (await served.get(f"/api/v1/live-sessions/{uuid.uuid4()}")).status_code == 404


async def test_other_tenants_sessions_are_404_and_keys_are_required(served, fake_zoom):
    mine = (await served.post("/api/v1/live-sessions", json={
        "name": "Mine", "start_time": START.isoformat(), "duration_minutes": 30})).json()
    key, _ = await create_api_key(f"other-{uuid.uuid4().hex[:8]}")
    other = {"Authorization": f"Bearer {key}"}
    assert (await served.get(f"/api/v1/live-sessions/{mine['id']}", headers=other)).status_code == 404
    assert (await served.get(f"/api/v1/live-sessions/{mine['id']}/attendance", headers=other)).status_code == 404
    assert (await served.get("/api/v1/live-sessions", headers=other)).json()["items"] == []
    served.headers.pop("Authorization")
    assert (await served.get("/api/v1/live-sessions")).status_code == 401
