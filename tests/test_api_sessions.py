"""Recording sessions through the REST API with real media (encoded here with PyAV), real Postgres, Redis and local
storage: chunks, idempotency, conflicts, gaps, probing, client cuts, limits, completion, joining, deletion, tenancy."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import math
import uuid
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import av
import pytest

from mediasvc.app import create_app
from mediasvc.auth import create_api_key
from mediasvc.ingest.sessions_join import JOIN_JOB, join_session
from mediasvc_video.probe_local import open_local, probe_duration
from mediasvc.tables import Asset as AssetRow
from mediasvc.tables import Chunk, RecordingSession
from mediasvc.tables import Event as EventRow
from tests.conftest import serve_in_process

API = "/api/v1/sessions"
FPS = 10
WIDTH, HEIGHT, BARS = 128, 32, 8  # each frame shows its global number as 8 black/white bars
RATE = 48000


# --- media -----------------------------------------------------------------------------------------------------


def _frame(number: int) -> av.VideoFrame:
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    luma = frame.planes[0]
    row = bytearray(luma.line_size)
    bar = WIDTH // BARS
    for b in range(BARS):
        row[b * bar:(b + 1) * bar] = bytes([235 if (number >> b) & 1 else 16]) * bar
    luma.update(bytes(row) * HEIGHT)
    for plane in frame.planes[1:]:
        plane.update(bytes([128]) * (plane.line_size * plane.height))
    return frame


def frame_number(frame: av.VideoFrame) -> int:
    gray = frame.reformat(format="gray").planes[0]
    data, stride, bar = bytes(gray), gray.line_size, frame.width // BARS
    row = frame.height // 2
    return sum(1 << b for b in range(BARS) if data[row * stride + b * bar + bar // 2] > 128)


@lru_cache(maxsize=1)
def _tone() -> bytes:
    return b"".join(int(6000 * math.sin(2 * math.pi * 440 * k / RATE)).to_bytes(2, "little", signed=True)
                    for k in range(RATE))


@lru_cache(maxsize=64)
def make_chunk(first_frame: int, frames: int = 20, gop: int = 5) -> bytes:
    """An MP4 (MPEG-4 video, AAC audio) of ``frames`` frames at 10 fps showing global frames first_frame.."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.gop_size, video.bit_rate = gop, 1_000_000
        video.options = {"sc_threshold": "1000000000"}  # keyframes every `gop` frames, never elsewhere
        sound = out.add_stream("aac", rate=RATE, layout="mono")
        for i in range(frames):
            frame = _frame(first_frame + i)
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        total, done, tone = frames * RATE // FPS, 0, _tone() * 2
        while done < total:
            n = min(1024, total - done)
            samples = av.AudioFrame(format="s16", layout="mono", samples=n)
            samples.sample_rate = RATE
            start = (done % RATE) * 2
            samples.planes[0].update(tone[start:start + n * 2])
            samples.pts = done
            out.mux(sound.encode(samples))
            done += n
        out.mux(sound.encode(None))
    return buffer.getvalue()


def recording(chunks: int, frames: int, overlap_frames: int, gop: int) -> list[bytes]:
    """A recording cut into chunks of ``frames`` frames, each overlapping the previous by ``overlap_frames``."""
    step = frames - overlap_frames
    return [make_chunk(i * step, frames, gop) for i in range(chunks)]


# --- helpers ---------------------------------------------------------------------------------------------------


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]


async def create_session(client, auth, **fields) -> dict:
    response = await client.post(API, json=fields, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def upload(client, auth, session: str, index: int, data: bytes, *, filename: str = "chunk.mp4",
                 overlap: float = 0.0, total: int | None = None, question: str | None = "q1",
                 replace: bool | None = None, extra: dict[str, str] | None = None):
    fields: dict[str, str] = {"sequence_index": str(index), "overlap_seconds": str(overlap)}
    if total is not None:
        fields["total_chunks"] = str(total)
    if question is not None:
        fields["question_id"] = question
    if replace is not None:
        fields["replace"] = "true" if replace else "false"
    fields.update(extra or {})
    return await client.post(f"{API}/{session}/chunks", headers=auth, data=fields,
                             files={"file": (filename, data, "video/mp4")})


def multipart(boundary: str, fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, bytes]:
    """(everything before the file's bytes, the closing part) of a multipart body."""
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
             f"Content-Type: video/mp4\r\n\r\n").encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


async def asgi_request(app, path: str, headers: dict[str, str], messages: list[dict]) -> tuple[int, int]:
    """Call the app as an ASGI server would; returns (status, how many receive() calls were answered)."""
    pending = list(messages)
    answered = 0
    status = 0

    async def receive():
        nonlocal answered
        answered += 1
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return status, answered


async def events_of(session_id: str, event_type: str) -> list[dict]:
    rows = await EventRow.raw("SELECT type, payload FROM events WHERE type = {} AND payload->>'session_id' = {} "
                              "ORDER BY created_at", event_type, session_id)
    return [{**row, "payload": json.loads(row["payload"])} for row in rows]


def stored_files(app, session_id: str) -> list[Path]:
    root = app.state.services.storage.root  # the local backend's directory
    return sorted(p for p in root.rglob("*") if p.is_file() and session_id in str(p))


def temp_files(app) -> list[Path]:
    directory = Path(app.state.services.settings.data_dir) / "tmp"
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


def job_ctx(app) -> dict[str, Any]:
    services = app.state.services
    return {"storage": services.storage, "settings": services.settings, "host": services.host,
            "queue": services.queue, "metrics": services.metrics}


# --- tests -----------------------------------------------------------------------------------------------------


async def test_create_is_idempotent_on_the_client_id_and_validates(client, auth):
    devices = [{"deviceId": "cam-1", "kind": "videoinput", "label": "FaceTime HD", "groupId": "g1"},
               {"deviceId": "mic-1", "kind": "audioinput", "label": "Built-in", "groupId": "g1"}]
    client_id = f"rec-{uuid.uuid4().hex[:8]}"
    first = await client.post(API, headers=auth, json={
        "client_id": client_id, "interview_id": "int-1", "user_id": "u-1", "expected_chunks": 4,
        "metadata": {"question": 2}, "devices": devices})
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["status"] == "active"
    assert body["profile"] == "video_response"
    assert body["devices"] == devices
    assert body["expected_chunks"] == 4
    assert body["missing_chunks"] == 4

    again = await client.post(API, headers=auth, json={"id": client_id, "interview_id": "other"})
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert again.json()["interview_id"] == "int-1"  # the existing session, unchanged

    by_client_id = await client.get(f"{API}/{client_id}", headers=auth)
    assert by_client_id.status_code == 200
    assert by_client_id.json()["id"] == body["id"]

    bad_device = await client.post(API, headers=auth, json={"devices": [{"deviceId": "x", "kind": "camera"}]})
    assert_envelope(bad_device, 422, "validation_failed")
    assert_envelope(await client.post(API, headers=auth, json={"profile": "nope"}), 422, "validation_failed")
    assert_envelope(await client.post(API, headers=auth, json={"profile": "avatar"}), 422, "validation_failed")
    assert_envelope(await client.post(API, headers=auth, json={"expected_chunks": 0}), 422, "validation_failed")
    assert_envelope(await client.post(API, headers=auth, json={"id": "a", "client_id": "b"}), 422,
                    "validation_failed")
    assert_envelope(await client.post(API, headers=auth, json={"client_id": "../etc"}), 422, "validation_failed")
    unknown = await client.post(API, headers=auth, json={"colour": "red"})
    assert unknown.status_code in (400, 422) and "error" in unknown.json()
    assert_envelope(await client.post(API, headers=auth, content=b"{not json",
                                      ), 400, "bad_request")
    assert_envelope(await client.get(f"{API}/{uuid.uuid4()}", headers=auth), 404, "not_found")


async def test_out_of_order_gaps_then_filled(client, auth):
    session = await create_session(client, auth, expected_chunks=6)
    sid = session["id"]
    chunks = recording(6, 20, 5, 5)
    for index in (5, 0, 3, 1):  # out of order; 2 and 4 missing
        response = await upload(client, auth, sid, index, chunks[index], overlap=0.5 if index else 0, total=6)
        assert response.status_code == 201, response.text
    gaps = (await client.get(f"{API}/{sid}/gaps", headers=auth)).json()
    assert gaps["missing"] == [{"start": 2, "end": 2}, {"start": 4, "end": 4}]
    assert gaps["missing_count"] == 2
    assert gaps["inconsistent"] == []
    assert gaps["complete"] is False

    for index in (4, 2):
        response = await upload(client, auth, sid, index, chunks[index], overlap=0.5, total=6)
        assert response.status_code == 201, response.text
    gaps = (await client.get(f"{API}/{sid}/gaps", headers=auth)).json()
    assert gaps["missing"] == []
    assert gaps["complete"] is True

    summary = (await client.get(f"{API}/{sid}", headers=auth)).json()
    assert summary["chunks_received"] == 6
    assert summary["bytes_received"] == sum(len(c) for c in chunks)
    assert [c["sequence_index"] for c in summary["chunks"]] == list(range(6))
    assert all(abs(c["duration_seconds"] - 2.0) < 0.05 for c in summary["chunks"])
    # probed: 6 x 2 s minus 5 overlaps of 0.5 s
    assert summary["duration_seconds"] == pytest.approx(12.0 - 2.5, abs=0.1)
    assert summary["missing_chunks"] == 0


async def test_gap_relative_to_total_chunks_and_max_index(client, auth):
    session = await create_session(client, auth)
    sid = session["id"]
    chunk = make_chunk(0)
    assert (await upload(client, auth, sid, 3, chunk)).status_code == 201
    gaps = (await client.get(f"{API}/{sid}/gaps", headers=auth)).json()
    assert gaps["missing"] == [{"start": 0, "end": 2}]  # up to the highest index seen
    assert (await upload(client, auth, sid, 1, make_chunk(15), total=7)).status_code == 201
    gaps = (await client.get(f"{API}/{sid}/gaps", headers=auth)).json()
    assert gaps["expected_chunks"] == 7  # a chunk's total_chunks raises the expectation
    assert gaps["missing"] == [{"start": 0, "end": 0}, {"start": 2, "end": 2}, {"start": 4, "end": 6}]


async def test_resend_is_idempotent_different_content_conflicts_replace_works(app, client, auth):
    sid = (await create_session(client, auth))["id"]
    original, other = make_chunk(0), make_chunk(100)
    first = await upload(client, auth, sid, 0, original)
    assert first.status_code == 201
    again = await upload(client, auth, sid, 0, original)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["sha256"] == first.json()["sha256"]

    conflict = await upload(client, auth, sid, 0, other)
    error = assert_envelope(conflict, 409, "conflict")
    assert error["details"]["existing_sha256"] == first.json()["sha256"]
    [stored] = stored_files(app, sid)
    assert stored.read_bytes() == original  # the conflicting upload changed nothing

    replaced = await upload(client, auth, sid, 0, other, replace=True)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["id"] == first.json()["id"]
    assert replaced.json()["sha256"] != first.json()["sha256"]
    assert replaced.json()["size_bytes"] == len(other)
    [stored] = stored_files(app, sid)
    assert stored.name == "chunk_0000.mp4"
    assert stored.read_bytes() == other

    uploaded = await events_of(sid, "chunk_uploaded")
    assert [e["payload"]["replaced"] for e in uploaded] == [False, True]  # one per stored version, none for resends
    assert uploaded[0]["payload"]["sequence_index"] == 0
    assert uploaded[0]["payload"]["question_id"] == "q1"
    assert temp_files(app) == []


async def test_client_cut_mid_chunk_records_nothing(app, client, auth):
    sid = (await create_session(client, auth))["id"]
    data = make_chunk(0)
    boundary = "cutcutcut"
    head, tail = multipart(boundary, {"sequence_index": "0"}, "chunk.mp4", data)
    headers = {"authorization": auth["Authorization"], "content-type": f"multipart/form-data; boundary={boundary}",
               "content-length": str(len(head) + len(data) + len(tail))}
    # what an ASGI server delivers when the connection drops: part of the body, then http.disconnect
    status, _ = await asgi_request(app, f"{API}/{sid}/chunks", headers, [
        {"type": "http.request", "body": head, "more_body": True},
        {"type": "http.request", "body": data[: len(data) // 2], "more_body": True},
        {"type": "http.disconnect"},
    ])
    assert status in (0, 400)

    async def cut_body():  # and an HTTP client whose body source fails half-way
        yield head
        yield data[: len(data) // 2]
        raise ConnectionResetError("connection reset by peer")

    try:
        await client.post(f"{API}/{sid}/chunks", headers={**auth, "content-type": headers["content-type"]},
                          content=cut_body())
    except ConnectionResetError:
        pass

    assert await Chunk.select().where(Chunk.session == uuid.UUID(sid)) == []
    assert stored_files(app, sid) == []
    assert temp_files(app) == []
    assert await events_of(sid, "chunk_uploaded") == []
    summary = (await client.get(f"{API}/{sid}", headers=auth)).json()
    assert summary["chunks_received"] == 0
    # the same chunk sent whole afterwards is stored normally
    assert (await upload(client, auth, sid, 0, data)).status_code == 201


async def test_oversize_chunks_get_413_early(make_settings):
    limit = 30_000
    settings = make_settings(profiles={"video_response": {"max_bytes": limit}})
    app = create_app(settings)
    async with serve_in_process(app) as http:
        key, _ = await create_api_key(f"big-{uuid.uuid4().hex[:6]}")
        auth = {"Authorization": f"Bearer {key}"}
        sid = (await create_session(http, auth))["id"]
        small = make_chunk(0)
        assert len(small) < limit
        assert (await upload(http, auth, sid, 0, small)).status_code == 201

        big = small + bytes(2 * limit)  # a valid head, well over the limit
        assert_envelope(await upload(http, auth, sid, 1, big), 413, "payload_too_large")

        boundary = "bigbigbig"
        head, tail = multipart(boundary, {"sequence_index": "2"}, "chunk.mp4", big)
        pieces = [head] + [big[i:i + 4096] for i in range(0, len(big), 4096)] + [tail]
        messages = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
        messages[-1]["more_body"] = False
        base = {"authorization": auth["Authorization"], "content-type": f"multipart/form-data; boundary={boundary}"}
        # announced too large: refused before any byte is read
        status, answered = await asgi_request(app, f"{API}/{sid}/chunks",
                                              {**base, "content-length": str(sum(map(len, pieces)))}, messages)
        assert (status, answered) == (413, 0)
        # not announced (chunked): refused as soon as the count passes the limit, not at the end
        status, answered = await asgi_request(app, f"{API}/{sid}/chunks", base, messages)
        assert status == 413
        assert answered < len(messages) - 2
        rows = await Chunk.select(Chunk.sequence_index).where(Chunk.session == uuid.UUID(sid))
        assert [r["sequence_index"] for r in rows] == [0]
        assert [p.name for p in stored_files(app, sid)] == ["chunk_0000.mp4"]
        assert temp_files(app) == []


async def test_concurrent_uploads_store_what_the_rows_say(app, client, auth):
    sid = (await create_session(client, auth))["id"]
    contents = [make_chunk(100 + n, frames=4) for n in range(10)]
    responses = await asyncio.gather(*[upload(client, auth, sid, i, contents[i % 10]) for i in range(1, 51)])
    assert [r.status_code for r in responses] == [201] * 50
    # five different contents raced for one index: one wins, the others conflict, and the stored bytes are the
    # winner's (never a mix, never a loser's)
    racers = await asyncio.gather(*[upload(client, auth, sid, 0, contents[n]) for n in range(5)])
    assert sorted(r.status_code for r in racers) == [201, 409, 409, 409, 409]
    rows = await Chunk.select().where(Chunk.session == uuid.UUID(sid)).order_by(Chunk.sequence_index)
    assert [r["sequence_index"] for r in rows] == list(range(51))
    storage = app.state.services.storage
    for row in rows:
        assert hashlib.sha256(storage.local_path(row["storage_key"]).read_bytes()).hexdigest() == row["sha256"]
    assert len(await events_of(sid, "chunk_uploaded")) == 51


async def test_wrong_content_or_extension_gets_415(app, client, auth):
    sid = (await create_session(client, auth))["id"]
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    assert_envelope(await upload(client, auth, sid, 0, png), 415, "unsupported_media_type")
    playlist = b"#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:9/secret.ts\n" + bytes(64)
    assert_envelope(await upload(client, auth, sid, 0, playlist), 415, "unsupported_media_type")
    assert_envelope(await upload(client, auth, sid, 0, make_chunk(0), filename="chunk.pdf"), 415,
                    "unsupported_media_type")
    assert_envelope(await upload(client, auth, sid, 0, make_chunk(0), filename="chunk"), 415,
                    "unsupported_media_type")
    assert await Chunk.select().where(Chunk.session == uuid.UUID(sid)) == []
    assert stored_files(app, sid) == []
    assert temp_files(app) == []


async def test_bad_chunk_requests_get_the_envelope(client, auth):
    sid = (await create_session(client, auth))["id"]
    chunk = make_chunk(0)
    files = {"file": ("chunk.mp4", chunk, "video/mp4")}
    post = f"{API}/{sid}/chunks"
    assert_envelope(await client.post(post, headers=auth, files=files), 422, "validation_failed")  # no index
    for fields in ({"sequence_index": "-1"}, {"sequence_index": "x"}, {"sequence_index": "1", "total_chunks": "1"},
                   {"sequence_index": "0", "overlap_seconds": "nan"}, {"sequence_index": "0", "overlap_seconds": "-1"},
                   {"sequence_index": "0", "session_id": str(uuid.uuid4())}):
        assert_envelope(await client.post(post, headers=auth, data=fields, files=files), 422, "validation_failed")
    assert_envelope(await client.post(post, headers=auth, files={"sequence_index": (None, "0")}), 422,
                    "validation_failed")  # multipart without a file part
    assert_envelope(await client.post(post, headers=auth, json={"sequence_index": 0}), 415,
                    "unsupported_media_type")
    truncated = b'--b\r\nContent-Disposition: form-data; name="sequence_index"\r\n\r\n0\r\n--b\r\nContent-Dispo'
    assert_envelope(await client.post(post, headers={**auth, "content-type": "multipart/form-data; boundary=b"},
                                      content=truncated), 400, "bad_request")
    assert_envelope(await client.post(f"{API}/{uuid.uuid4()}/chunks", headers=auth, data={"sequence_index": "0"},
                                      files=files), 404, "not_found")
    assert_envelope(await client.post(post, data={"sequence_index": "0"}, files=files), 401, "unauthorized")
    assert_envelope(await client.get(f"{API}?status=bogus", headers=auth), 422, "validation_failed")
    assert await Chunk.select().where(Chunk.session == uuid.UUID(sid)) == []


async def test_durations_come_from_probing_and_inconsistent_chunks_are_reported(client, auth):
    sid = (await create_session(client, auth, expected_chunks=5))["id"]
    broken = make_chunk(0)[:40] + bytes(500)  # an MP4 head, nothing playable behind it
    uploads = [(0, make_chunk(0), 0.0), (1, make_chunk(15), 0.5), (2, make_chunk(30, frames=6), 0.5),
               (3, broken, 0.5), (4, make_chunk(60, frames=6), 0.5)]
    for index, data, overlap in uploads:
        assert (await upload(client, auth, sid, index, data, overlap=overlap)).status_code == 201
    summary = (await client.get(f"{API}/{sid}", headers=auth)).json()
    durations = {c["sequence_index"]: c["duration_seconds"] for c in summary["chunks"]}
    assert durations[0] == pytest.approx(2.0, abs=0.05)
    assert durations[2] == pytest.approx(0.6, abs=0.05)
    assert durations[3] is None
    # 2.0 + (2.0 - 0.5) + (0.6 - 0.5) + 0 + (0.6 - 0.5)
    assert summary["duration_seconds"] == pytest.approx(3.7, abs=0.1)

    gaps = (await client.get(f"{API}/{sid}/gaps", headers=auth)).json()
    assert gaps["missing"] == []
    reasons = {item["sequence_index"]: item["reason"] for item in gaps["inconsistent"]}
    assert reasons == {2: "duration_differs_from_median", 3: "no_duration"}  # the short last chunk is fine
    assert gaps["complete"] is False

    sid2 = (await create_session(client, auth))["id"]
    assert (await upload(client, auth, sid2, 0, make_chunk(0))).status_code == 201
    assert (await upload(client, auth, sid2, 1, make_chunk(0, frames=4), overlap=1.0)).status_code == 201
    gaps = (await client.get(f"{API}/{sid2}/gaps", headers=auth)).json()
    assert [(i["sequence_index"], i["reason"]) for i in gaps["inconsistent"]] == [(1, "overlap_exceeds_duration")]


def _decoded(path: Path) -> tuple[list[int], list[Fraction], float]:
    with open_local(path) as container:
        numbers, times = [], []
        for frame in container.decode(video=0):
            numbers.append(frame_number(frame))
            times.append(frame.pts * frame.time_base)
    return numbers, times, probe_duration(path) or 0.0


@pytest.mark.parametrize(("overlap_frames", "gop", "mode"), [(5, 5, "remux"), (3, 20, "reencode")])
async def test_complete_emits_event_and_join_plays_through_once(app, client, auth, overlap_frames, gop, mode):
    chunks = recording(4, 20, overlap_frames, gop)
    overlap = overlap_frames / FPS
    sid = (await create_session(client, auth, expected_chunks=4, interview_id="int-join"))["id"]
    for index, data in enumerate(chunks):
        response = await upload(client, auth, sid, index, data, overlap=overlap if index else 0.0, total=4)
        assert response.status_code == 201, response.text

    completed = await client.post(f"{API}/{sid}/complete?join=true", headers=auth)
    assert completed.status_code == 202, completed.text  # the join is queued: poll Location for the asset
    assert completed.headers["location"] == f"/api/v1/sessions/{sid}" and completed.json()["join"] == "queued"
    assert completed.json()["status"] == "completed"
    assert completed.json()["completed_at"]
    [event] = await events_of(sid, "session.completed")
    assert event["payload"]["chunks"] == 4
    assert event["payload"]["join"] is True
    assert event["payload"]["interview_id"] == "int-join"
    assert event["payload"]["duration_seconds"] == pytest.approx(8.0 - 3 * overlap, abs=0.1)
    assert await app.state.services.queue.job(f"{JOIN_JOB}:{sid}") is not None  # the join was queued
    again = await client.post(f"{API}/{sid}/complete", headers=auth)
    assert again.status_code == 202  # still queued
    assert len(await events_of(sid, "session.completed")) == 1  # completing twice emits once
    assert_envelope(await upload(client, auth, sid, 4, chunks[0]), 409, "conflict")  # closed for chunks

    result = await join_session(job_ctx(app), session_id=sid)
    assert result["status"] == "done", result
    assert result["mode"] == mode
    session = await RecordingSession.select().where(RecordingSession.id == uuid.UUID(sid)).first()
    assert str(session["asset"]) == result["asset_id"]
    asset = await AssetRow.select().where(AssetRow.id == session["asset"]).output(load_json=True).first()
    assert asset["status"] in ("uploaded", "processing", "ready")
    assert asset["metadata"]["session_id"] == sid
    uploaded = await EventRow.raw("SELECT payload FROM events WHERE type = 'media.uploaded' "
                                  "AND payload->>'asset_id' = {}", result["asset_id"])
    assert json.loads(uploaded[0]["payload"])["method"] == "session"

    path = app.state.services.storage.local_path(asset["storage_key"])
    numbers, times, duration = _decoded(path)
    expected_frames = 20 + 3 * (20 - overlap_frames)
    assert duration == pytest.approx(sum(probe_duration_of(c) for c in chunks) - 3 * overlap, abs=0.1)
    assert numbers == list(range(expected_frames))  # every frame once, in order: no repeated overlap
    assert all(a < b for a, b in itertools.pairwise(times))
    assert times[-1] - times[0] == pytest.approx((expected_frames - 1) / FPS, abs=0.02)
    summary = (await client.get(f"{API}/{sid}", headers=auth)).json()
    assert summary["asset_id"] == result["asset_id"]

    rerun = await join_session(job_ctx(app), session_id=sid)  # a retried job makes no second asset
    assert rerun["asset_id"] == result["asset_id"]
    assert len(await AssetRow.raw("SELECT id FROM assets WHERE metadata->>'session_id' = {}", sid)) == 1


def probe_duration_of(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        return container.duration / av.time_base


async def test_join_requested_by_session_metadata(app, client, auth):
    sid = (await create_session(client, auth, metadata={"join": True}))["id"]
    assert (await upload(client, auth, sid, 0, make_chunk(0))).status_code == 201
    completed = await client.post(f"{API}/{sid}/complete", headers=auth)
    assert completed.status_code == 202 and completed.json()["join"] == "queued"
    assert await app.state.services.queue.job(f"{JOIN_JOB}:{sid}") is not None
    [event] = await events_of(sid, "session.completed")
    assert event["payload"]["join"] is True

    plain = (await create_session(client, auth))["id"]
    assert (await upload(client, auth, plain, 0, make_chunk(0))).status_code == 201
    assert (await client.post(f"{API}/{plain}/complete", headers=auth)).status_code == 200
    assert await app.state.services.queue.job(f"{JOIN_JOB}:{plain}") is None
    assert (await join_session(job_ctx(app), session_id=plain))["status"] == "done"  # the job itself still works


async def test_complete_refuses_missing_chunks_unless_forced(client, auth):
    sid = (await create_session(client, auth, expected_chunks=3))["id"]
    assert (await upload(client, auth, sid, 0, make_chunk(0))).status_code == 201
    error = assert_envelope(await client.post(f"{API}/{sid}/complete", headers=auth), 409, "conflict")
    assert error["details"]["missing"] == [{"start": 1, "end": 2}]
    assert (await client.get(f"{API}/{sid}", headers=auth)).json()["status"] == "active"
    assert await events_of(sid, "session.completed") == []
    forced = await client.post(f"{API}/{sid}/complete?force=true", headers=auth)
    assert forced.status_code == 200
    [event] = await events_of(sid, "session.completed")
    assert event["payload"]["missing"] == [{"start": 1, "end": 2}]


async def test_delete_removes_rows_and_files(app, client, auth):
    sid = (await create_session(client, auth, client_id=f"del-{uuid.uuid4().hex[:6]}"))["id"]
    for index in range(2):
        assert (await upload(client, auth, sid, index, make_chunk(index * 15))).status_code == 201
    files = stored_files(app, sid)
    assert [p.name for p in files] == ["chunk_0000.mp4", "chunk_0001.mp4"]
    response = await client.delete(f"{API}/{sid}", headers=auth)
    assert response.status_code == 204
    assert not any(p.exists() for p in files)
    assert await Chunk.select().where(Chunk.session == uuid.UUID(sid)) == []
    assert await RecordingSession.select().where(RecordingSession.id == uuid.UUID(sid)) == []
    assert_envelope(await client.get(f"{API}/{sid}", headers=auth), 404, "not_found")
    assert_envelope(await client.delete(f"{API}/{sid}", headers=auth), 404, "not_found")


async def test_another_tenants_session_is_404(app, client, auth):
    sid = (await create_session(client, auth))["id"]
    assert (await upload(client, auth, sid, 0, make_chunk(0))).status_code == 201
    key, _ = await create_api_key(f"other-{uuid.uuid4().hex[:6]}")
    other = {"Authorization": f"Bearer {key}"}
    assert_envelope(await client.get(f"{API}/{sid}", headers=other), 404, "not_found")
    assert_envelope(await client.get(f"{API}/{sid}/gaps", headers=other), 404, "not_found")
    assert_envelope(await upload(client, other, sid, 1, make_chunk(15)), 404, "not_found")
    assert_envelope(await client.post(f"{API}/{sid}/complete", headers=other), 404, "not_found")
    assert_envelope(await client.delete(f"{API}/{sid}", headers=other), 404, "not_found")
    assert (await client.get(API, headers=other)).json()["items"] == []
    assert len(stored_files(app, sid)) == 1
    assert (await client.get(f"{API}/{sid}", headers=auth)).json()["chunks_received"] == 1


async def test_list_filters_and_cursor_pagination(client, auth):
    made = []
    for n in range(5):
        made.append((await create_session(client, auth, interview_id="int-a" if n < 4 else "int-b",
                                          user_id=f"user-{n % 2}"))["id"])
    assert (await upload(client, auth, made[0], 0, make_chunk(0))).status_code == 201
    assert (await client.post(f"{API}/{made[0]}/complete", headers=auth)).status_code == 200

    items = (await client.get(f"{API}?interview_id=int-a", headers=auth)).json()["items"]
    assert [i["id"] for i in items] == made[3::-1]
    items = (await client.get(f"{API}?interview_id=int-a&user_id=user-1", headers=auth)).json()["items"]
    assert [i["id"] for i in items] == [made[3], made[1]]
    items = (await client.get(f"{API}?status=completed", headers=auth)).json()["items"]
    assert [(i["id"], i["chunks_received"]) for i in items] == [(made[0], 1)]

    seen, cursor = [], None
    while True:
        page = (await client.get(API, headers=auth, params={"limit": 2, **({"cursor": cursor} if cursor else {})}))
        body = page.json()
        seen += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == made[::-1]
    assert_envelope(await client.get(f"{API}?cursor=@@@", headers=auth), 400, "bad_request")


def settings_without_video(make_settings, **overrides):
    """The video plugin blocked (no prober, no joiner); its steps made optional so the app still starts."""
    video_steps = {"probe", "mp4", "hls", "thumbnail", "audio"}
    profiles = {name: {"optional_steps": sorted(set(p.optional_steps) | (set(p.steps) & video_steps))}
                for name, p in make_settings().profiles.items()}
    return make_settings(blocked_plugins=["video"], profiles=profiles, **overrides)


async def test_without_a_video_plugin_durations_are_unknown_and_joining_is_refused(make_settings):
    app = create_app(settings_without_video(make_settings))
    assert app.state.services.host.media_prober("video/mp4") is None
    async with serve_in_process(app) as http:
        key, _ = await create_api_key(f"novideo-{uuid.uuid4().hex[:6]}")
        auth = {"Authorization": f"Bearer {key}"}
        sid = (await create_session(http, auth, metadata={"join": True}))["id"]
        chunk = await upload(http, auth, sid, 0, make_chunk(0))
        assert chunk.status_code == 201, chunk.text
        assert chunk.json()["duration_seconds"] is None  # stored, its duration unknown
        gaps = (await http.get(f"{API}/{sid}/gaps", headers=auth)).json()
        assert [i["reason"] for i in gaps["inconsistent"]] == ["no_duration"]
        error = assert_envelope(await http.post(f"{API}/{sid}/complete", headers=auth), 503, "service_unavailable")
        assert "mediasvc-video" in error["message"]
        assert (await http.get(f"{API}/{sid}", headers=auth)).json()["status"] == "active"  # nothing changed
        completed = await http.post(f"{API}/{sid}/complete?join=false", headers=auth)
        assert completed.status_code == 200 and completed.json()["status"] == "completed"
        assert await app.state.services.queue.job(f"{JOIN_JOB}:{sid}") is None
        skipped = await join_session(job_ctx(app), session_id=sid)  # a join queued before the plugin went away
        assert skipped == {"status": "skipped", "reason": "no chunk joiner installed"}


def test_probe_opens_only_local_allowed_media(tmp_path):
    chunk = tmp_path / "chunk.mp4"
    chunk.write_bytes(make_chunk(0))
    assert probe_duration(chunk) == pytest.approx(2.0, abs=0.05)
    playlist = tmp_path / "evil.mp4"  # a playlist named like a video: never handed to the HLS demuxer
    playlist.write_bytes(b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n")
    assert probe_duration(playlist) is None
    assert probe_duration(f"file://{chunk}") is None
    assert probe_duration("http://127.0.0.1:9/chunk.mp4") is None
    assert probe_duration(tmp_path / "missing.mp4") is None
    assert probe_duration(chunk, format="hls") is None  # only allow-listed demuxers
