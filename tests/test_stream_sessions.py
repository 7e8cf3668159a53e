"""Stream sessions (MediaRecorder ``start(timeslice)`` blobs): a WebM and a Safari-style fragmented MP4 stream,
generated here and cut into blobs (only the first with the header), are accepted chunk by chunk, joined by
concatenation and remux (no re-encode) into a seekable asset of the right duration; gaps are a 409 naming them
unless ``allow_gaps``; a join that cannot work leaves the session ``failed`` with a reason and an event."""

from __future__ import annotations

import io
import uuid

import av
import numpy as np
import pytest

from mediasvc.ingest.sessions_join import join_session, readable_reason
from mediasvc.tables import Asset as AssetRow
from mediasvc.tables import RecordingSession
from mediasvc_video.join_stream import _find_moof
from tests.test_api_sessions import API, assert_envelope, create_session, events_of, job_ctx

SECONDS, FPS = 4.0, 10
CUES = b"\x1c\x53\xbb\x6b"


def make_stream(fmt: str) -> bytes:
    """A recorder-like stream: WebM (VP9/Opus, live: no cues, no duration) or fragmented MP4 (H.264/AAC,
    ``empty_moov``: the init segment then one fragment per second)."""
    buffer = io.BytesIO()
    if fmt == "webm":
        out = av.open(buffer, "w", format="webm", options={"live": "1"})
        video, audio = out.add_stream("libvpx-vp9", rate=FPS), out.add_stream("libopus", rate=48000, layout="mono")
    else:
        out = av.open(buffer, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
        video, audio = out.add_stream("libx264", rate=FPS), out.add_stream("aac", rate=48000, layout="mono")
    video.width, video.height, video.pix_fmt, video.gop_size = 160, 120, "yuv420p", FPS
    for i in range(int(SECONDS * FPS)):
        frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), (i * 6) % 255, np.uint8), format="rgb24")
        frame.pts = i
        out.mux(video.encode(frame))
    out.mux(video.encode(None))
    done, total = 0, int(SECONDS * 48000)
    while done < total:
        n = min(960, total - done)
        samples = av.AudioFrame(format="s16", layout="mono", samples=n)
        samples.sample_rate, samples.pts = 48000, done
        samples.planes[0].update(np.zeros(n, np.int16).tobytes())
        out.mux(audio.encode(samples))
        done += n
    out.mux(audio.encode(None))
    out.close()
    return buffer.getvalue()


def blobs(fmt: str) -> list[bytes]:
    data = make_stream(fmt)
    if fmt == "webm":  # arbitrary offsets, the first past the header (not cluster-aligned)
        assert data.find(b"\x1f\x43\xb6\x75") < 700
        cuts = [700, len(data) * 2 // 5, len(data) * 3 // 4]
    else:  # Safari: the init segment alone, then whole fragments
        moofs, at = [], 0
        while (at := _find_moof(data, at)) != -1:
            moofs.append(at)
            at += 8
        assert len(moofs) >= 4
        cuts = [moofs[0], moofs[1], moofs[3]]
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


async def post_blob(client, auth, sid: str, index: int, data: bytes, name: str = "blob"):
    return await client.post(f"{API}/{sid}/chunks", headers=auth, data={"sequence_index": str(index)},
                             files={"file": (name, data, "application/octet-stream")})


async def session_row(sid: str) -> dict:
    return await RecordingSession.select().where(RecordingSession.id == uuid.UUID(sid)).first()


@pytest.mark.parametrize("fmt", ["webm", "mp4"])
async def test_a_recorder_stream_joins_into_a_seekable_asset(app, client, auth, fmt):
    pieces = blobs(fmt)
    session = await create_session(client, auth, mode="stream", expected_chunks=len(pieces))
    assert session["mode"] == "stream"
    sid = session["id"]
    for index, piece in enumerate(pieces):
        name = f"chunk-{index}.{fmt}" if index == 0 else "blob"  # MediaRecorder's FormData name for the rest
        response = await post_blob(client, auth, sid, index, piece, name)
        assert response.status_code == 201, response.text  # continuations are not sniff-refused (was 415)
    gaps = (await client.get(f"{API}/{sid}/gaps", headers=auth)).json()
    assert gaps["complete"] and gaps["inconsistent"] == []

    completed = await client.post(f"{API}/{sid}/complete?join=true", headers=auth)
    assert completed.status_code == 202 and completed.json()["join"] == "queued", completed.text
    result = await join_session(job_ctx(app), session_id=sid)
    assert result["status"] == "done" and result["mode"] == "remux", result
    assert result["duration"] == pytest.approx(SECONDS, abs=0.2)

    detail = (await client.get(f"{API}/{sid}", headers=auth)).json()
    assert detail["asset_id"] == result["asset_id"] and detail["join"] == "done" and detail["error"] is None
    asset = await AssetRow.select().where(AssetRow.id == uuid.UUID(result["asset_id"])).output(
        load_json=True).first()
    path = app.state.services.storage.local_path(asset["storage_key"])
    assert path.suffix == f".{fmt}" and "gaps" not in asset["metadata"]
    with av.open(str(path)) as joined:
        assert joined.duration / 1e6 == pytest.approx(SECONDS, abs=0.2)  # written into the header
        joined.seek(2_000_000)  # seeks (cues / moov index)
        frame = next(joined.decode(video=0))
        assert frame.time == pytest.approx(2.0, abs=1.0)
    if fmt == "webm":
        assert CUES in path.read_bytes()


@pytest.mark.parametrize("fmt", ["webm", "mp4"])
async def test_a_missing_chunk_is_a_409_unless_gaps_are_allowed(app, client, auth, fmt):
    pieces = blobs(fmt)
    sid = (await create_session(client, auth, mode="stream", expected_chunks=len(pieces)))["id"]
    for index, piece in enumerate(pieces):
        if index != 2:
            assert (await post_blob(client, auth, sid, index, piece, f"c.{fmt}" if index == 0 else "blob")
                    ).status_code == 201
    refused = assert_envelope(await client.post(f"{API}/{sid}/complete?join=true", headers=auth), 409, "conflict")
    assert refused["details"]["missing"] == [{"start": 2, "end": 2}] and "2" in refused["message"]

    completed = await client.post(f"{API}/{sid}/complete?join=true&allow_gaps=true", headers=auth)
    assert completed.status_code == 202, completed.text
    result = await join_session(job_ctx(app), session_id=sid)
    assert result["status"] == "done", result
    asset = await AssetRow.select().where(AssetRow.id == uuid.UUID(result["asset_id"])).output(
        load_json=True).first()
    [gap] = asset["metadata"]["gaps"]
    assert gap["chunks"] == {"start": 2, "end": 2}
    assert 0.5 < gap["seconds"]["start"] < gap["seconds"]["end"] < SECONDS


async def test_first_chunk_must_be_the_header_and_missing_header_is_refused(client, auth):
    pieces = blobs("webm")
    sid = (await create_session(client, auth, mode="stream"))["id"]
    assert_envelope(await post_blob(client, auth, sid, 0, pieces[1], "blob"), 415, "unsupported_media_type")
    assert (await post_blob(client, auth, sid, 1, pieces[1])).status_code == 201
    error = assert_envelope(await client.post(f"{API}/{sid}/complete?join=true&allow_gaps=true", headers=auth),
                            409, "conflict")
    assert "first chunk" in error["message"]
    # a segments session still sniffs every chunk
    plain = (await create_session(client, auth))["id"]
    assert_envelope(await post_blob(client, auth, plain, 1, pieces[1], "c.webm"), 415, "unsupported_media_type")


async def test_a_broken_stream_fails_the_session_with_a_reason_and_an_event(app, client, auth):
    header = blobs("webm")[0][:200]  # sniffs as WebM, then nothing but garbage
    sid = (await create_session(client, auth, mode="stream"))["id"]
    assert (await post_blob(client, auth, sid, 0, header + bytes(range(256)) * 40, "c.webm")).status_code == 201
    assert (await post_blob(client, auth, sid, 1, b"\x00garbage" * 500)).status_code == 201
    assert (await client.post(f"{API}/{sid}/complete?join=true", headers=auth)).status_code == 202
    result = await join_session(job_ctx(app), session_id=sid)
    assert result["status"] == "failed"
    detail = (await client.get(f"{API}/{sid}", headers=auth)).json()
    assert detail["status"] == "failed" and detail["join"] == "failed" and detail["asset_id"] is None
    assert detail["error"] and "/" not in detail["error"] and "Errno" not in detail["error"]
    [event] = await events_of(sid, "session.failed")
    assert event["payload"]["reason"] == detail["error"] and event["payload"]["stage"] == "join"
    failed = (await client.get(f"{API}?status=failed", headers=auth)).json()["items"]
    assert [s["id"] for s in failed] == [sid]
    # no session of this tenant is left completed without its asset
    assert all(s["asset_id"] for s in (await client.get(f"{API}?status=completed", headers=auth)).json()["items"])


async def test_a_broken_segment_chunk_fails_the_session_too(app, client, auth):
    sid = (await create_session(client, auth))["id"]  # segments: each chunk must be a file
    fake = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\xde\xad\xbe\xef" * 300
    assert (await post_blob(client, auth, sid, 0, fake, "c.mp4")).status_code == 201
    assert (await client.post(f"{API}/{sid}/complete?join=true", headers=auth)).status_code == 202
    result = await join_session(job_ctx(app), session_id=sid)
    assert result["status"] == "failed", result
    row = await session_row(sid)
    assert row["status"] == "failed" and "cannot be read" in row["error"] and row["asset"] is None
    assert len(await events_of(sid, "session.failed")) == 1


def test_reasons_carry_no_paths_or_errno():
    reason = readable_reason("[Errno 1094995529] Invalid data found when processing input: '/srv/data/tmp/x.mp4'")
    assert "/srv" not in reason and "Errno" not in reason and "Invalid data" in reason
