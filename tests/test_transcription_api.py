"""Transcription end to end on real components: an uploaded video with espeak-ng speech goes through probe, hls,
audio and transcribe on the in-app worker; the transcript, WebVTT captions, the HLS subtitles and the
``transcription.ready`` webhook are checked, then silence, a corrupt file, the batch endpoint and API errors.

The engine is the default, ``whispercpp``, unless MEDIASVC_TEST_TRANSCRIPTION_ENGINE names another (``faster-whisper``)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import struct
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import av
import numpy as np
import pytest
from mediasvc_transcription.captions import parse_webvtt
from mediasvc_transcription.hls_subtitles import first_pts
from mediasvc_transcription.wer import word_error_rate, words

from mediasvc.app import create_app
from mediasvc.auth import create_api_key
from mediasvc.settings import load_settings
from mediasvc.tables import ProcessingJob, Rendition, Transcript
from tests.conftest import serve_in_process
from tests.speech import HAVE_ESPEAK, read_mono, speak_wav
from tests.test_whisper_models import shared_models_dir
from tests.webhook_receiver import Receiver

# generous: the first step loads (whispercpp: converts) a model, and the test machine may be busy
pytestmark = [pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed"), pytest.mark.timeout(300)]

ENGINE = os.environ.get("MEDIASVC_TEST_TRANSCRIPTION_ENGINE", "whispercpp")  # the default engine
TEXT = "Tell me about a time you solved a difficult problem at work, and what you learned from it."
SECRET = "whsec_" + "c2VjcmV0LWZvci10ZXN0cw=="
PROFILES = {
    "clip": {"kind": "video", "formats": ["mp4"], "max_bytes": 50_000_000, "bucket": "clips",
             "steps": ["probe", "hls", "audio", "transcribe"]},
    "speech": {"kind": "audio", "formats": ["wav"], "max_bytes": 50_000_000, "bucket": "speech",
               "steps": ["transcribe"]},
}


def talking_video(path: Path, text: str) -> Path:
    """A few seconds of changing colour frames with ``text`` spoken by espeak-ng as AAC, in an MP4."""
    samples = read_mono(speak_wav(text, path.with_suffix(".wav")))
    samples = np.concatenate([np.zeros(4000, np.int16), samples, np.zeros(4000, np.int16)])
    seconds = len(samples) / 16000
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=10, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        audio = out.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for i in range(int(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), (i * 7) % 255, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000)
        for start in range(0, len(samples), 1024):
            block = samples[start:start + 1024].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            for resampled in resampler.resample(frame):
                out.mux(audio.encode(resampled))
        out.mux(audio.encode(None))
    return path


def silent_wav(seconds: float = 2.0) -> bytes:
    frames = int(16000 * seconds)
    header = b"RIFF" + struct.pack("<I", 36 + frames * 2) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", frames * 2)
    return header + bytes(frames * 2)


def corrupt_wav() -> bytes:
    """A WAV header that promises PCM in an impossible layout (0 channels), then noise."""
    return b"RIFF" + struct.pack("<I", 4036) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, 0, 16000, 0, 0, 16) + b"data" + struct.pack("<I", 4000) + os.urandom(4000)


def assert_envelope(response, status: int | tuple[int, ...], code: str | None = None) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> bytes:
    return talking_video(tmp_path_factory.mktemp("video") / "talk.mp4", TEXT).read_bytes()


@pytest.fixture(scope="module")
async def service(database_url, tmp_path_factory):
    receiver = Receiver()
    receiver.thread.start()
    settings = load_settings(env={}, **{
        "database_url": database_url, "queue.url": os.environ.get("MEDIASVC_TEST_REDIS", "redis://127.0.0.1:6379/0"),
        "queue.name": f"transcription-{uuid.uuid4().hex[:8]}", "data_dir": str(tmp_path_factory.mktemp("data")),
        "secret_key": "test-secret-key", "run_worker_in_app": True,
        "models_dir": str(shared_models_dir(tmp_path_factory)), "events.retry_base_seconds": 0.2,
        "profiles": PROFILES,
        "plugins": {"transcription": {"engine": ENGINE, "threads": 2},
                    "webhooks": {"allow_loopback": True, "targets": [
                        {"name": "backend", "url": receiver.url, "secret": SECRET, "events": ["transcription.*"]}]}},
    })
    app = create_app(settings)
    async with serve_in_process(app) as http:
        key, _ = await create_api_key(f"tr-{uuid.uuid4().hex[:8]}")
        other, _ = await create_api_key(f"tr-other-{uuid.uuid4().hex[:8]}")
        http.services = app.state.services
        http.api_auth = {"Authorization": f"Bearer {key}"}
        http.other_api_auth = {"Authorization": f"Bearer {other}"}
        http.receiver = receiver
        yield http
    receiver.server.shutdown()
    receiver.server.server_close()


async def upload(http, data: bytes, name: str, profile: str, content_type: str) -> str:
    """The presigned local upload path: ticket, signed PUT, confirm. Returns the asset id."""
    ticket = await http.post("/api/v1/uploads", headers=http.api_auth, json={
        "file_name": name, "profile": profile, "content_type": content_type, "size_bytes": len(data)})
    assert ticket.status_code == 201, ticket.text
    ticket = ticket.json()
    put = await http.put(local(ticket["url"]), content=data, headers=ticket["headers"])
    assert put.status_code == 200, put.text
    confirmed = await http.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=http.api_auth)
    assert confirmed.status_code == 200, confirmed.text
    return confirmed.json()["asset_id"]


async def settled(http, asset_id: str, timeout: float = 240) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        status = (await http.get(f"/api/v1/assets/{asset_id}/status", headers=http.api_auth)).json()
        if status["status"] in ("ready", "failed") and all(
                s["status"] not in ("queued", "running") for s in status["steps"]):
            return status
        await asyncio.sleep(0.2)
    raise AssertionError(f"asset {asset_id} did not finish: {status}")


@pytest.fixture(scope="module")
async def talk(service, video) -> str:
    asset_id = await upload(service, video, "talk.mp4", "clip", "video/mp4")
    status = await settled(service, asset_id)
    assert status["status"] == "ready", status
    assert {s["step"]: s["status"] for s in status["steps"]} == {
        "probe": "succeeded", "hls": "succeeded", "audio": "succeeded", "transcribe": "succeeded"}
    return asset_id


async def test_video_upload_is_transcribed_with_captions(service, talk):
    response = await service.get(f"/api/v1/assets/{talk}/transcription", headers=service.api_auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready" and body["asset_id"] == talk and body["language"] == "en"
    assert body["engine"] == ENGINE
    assert word_error_rate(TEXT, body["text"]) <= 0.25, body["text"]
    assert body["segments"] and 6.0 < body["duration_seconds"] < 12.0
    for segment in body["segments"]:
        assert 0.0 <= segment["start"] <= segment["end"] <= body["duration_seconds"]
    stored = await service.get(local(body["transcript_url"]))
    assert stored.status_code == 200 and json.loads(stored.content)["text"] == body["text"]

    captions = {c["name"]: c for c in body["captions"]}
    assert set(captions) == {"en.vtt", "en.srt"}
    vtt = await service.get(local(captions["en.vtt"]["url"]))  # the existing signed serve URL
    assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
    cues = parse_webvtt(vtt.text)
    assert len(cues) == len(body["segments"])
    assert [c[0] for c in cues] == sorted(c[0] for c in cues)
    assert all(start < end <= body["duration_seconds"] + 0.001 for start, end, _ in cues)
    assert word_error_rate(TEXT, " ".join(c[2] for c in cues)) <= 0.25
    srt = await service.get(local(captions["en.srt"]["url"]))
    assert srt.status_code == 200 and srt.text.startswith("1\n00:00:")

    detail = (await service.get(f"/api/v1/assets/{talk}", headers=service.api_auth)).json()
    assert {(r["kind"], r["name"]) for r in detail["renditions"] if r["kind"] == "captions"} == {
        ("captions", "en.vtt"), ("captions", "en.srt")}


async def hls_files(service, asset_id: str) -> tuple[str, str, str, bytes]:
    storage = service.services.storage
    master_key = (await Rendition.select(Rendition.storage_key).where(
        Rendition.asset == uuid.UUID(asset_id), Rendition.kind == "hls", Rendition.name == "master").first()
                  )["storage_key"]
    folder = master_key.rsplit("/", 1)[0]
    master = (await storage.get_bytes(master_key)).decode()
    subs = (await storage.get_bytes(f"{folder}/subtitles/en.m3u8")).decode()
    vtt = (await storage.get_bytes(f"{folder}/subtitles/en.vtt")).decode()
    variant_uri = next(line for line in master.splitlines() if line and not line.startswith("#"))
    variant = (await storage.get_bytes(f"{folder}/{variant_uri}")).decode()
    segment = next(line for line in variant.splitlines() if line and not line.startswith("#"))
    first_segment = await storage.get_bytes(f"{folder}/{variant_uri.rsplit('/', 1)[0]}/{segment}")
    return master, subs, vtt, first_segment


async def test_the_hls_master_lists_the_subtitles(service, talk):
    master, subs, vtt, first_segment = await hls_files(service, talk)
    lines = master.splitlines()
    media = [line for line in lines if line.startswith("#EXT-X-MEDIA:")]
    assert len(media) == 1
    assert 'TYPE=SUBTITLES' in media[0] and 'GROUP-ID="subs"' in media[0] and 'LANGUAGE="en"' in media[0]
    assert 'URI="subtitles/en.m3u8"' in media[0]
    variants = [line for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    assert variants and all('SUBTITLES="subs"' in v for v in variants)
    assert "#EXT-X-ENDLIST" in subs and "en.vtt" in subs.splitlines()
    header = vtt.splitlines()[1]
    assert header == f"X-TIMESTAMP-MAP=MPEGTS:{first_pts(first_segment)},LOCAL:00:00:00.000"
    assert word_error_rate(TEXT, " ".join(c[2] for c in parse_webvtt(vtt))) <= 0.25


async def test_transcription_ready_is_delivered_as_a_webhook(service, talk):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        bodies = [json.loads(r["body"]) for r in service.receiver.requests]
        ready = [b for b in bodies if b["type"] == "transcription.ready" and b["data"].get("asset_id") == talk]
        if ready:
            break
        await asyncio.sleep(0.2)
    assert ready, "transcription.ready was not delivered"
    data = ready[0]["data"]
    row = await Transcript.select().where(Transcript.asset == uuid.UUID(talk)).first()
    assert data["text"] == row["text"] and data["language"] == "en" and data["engine"] == ENGINE
    assert data["storage_key"] == row["storage_key"] and data["url"] and data["model"]
    assert data["duration"] == row["duration_seconds"] and len(data["segments"]) >= 1


async def test_transcribing_again_replaces_the_transcript_and_keeps_one_subtitles_entry(service, talk):
    accepted = await service.post(f"/api/v1/assets/{talk}/transcribe", headers=service.api_auth,
                                  json={"language": "en"})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert accepted.json()["job_ids"] == [job_id]  # the audio rendition exists: only the transcribe step
    busy = await service.post(f"/api/v1/assets/{talk}/transcribe", headers=service.api_auth)
    assert_envelope(busy, 409, "conflict")
    status = await settled(service, talk)
    assert status["status"] == "ready"
    job = await ProcessingJob.select().where(ProcessingJob.id == uuid.UUID(job_id)).first()
    assert job["status"] == "succeeded" and job["step"] == "transcribe"
    assert await Transcript.count().where(Transcript.asset == uuid.UUID(talk)) == 1
    master, *_ = await hls_files(service, talk)
    assert master.count("#EXT-X-MEDIA:") == 1 and master.count('SUBTITLES="subs"') == master.count("STREAM-INF")
    assert await Rendition.count().where(Rendition.asset == uuid.UUID(talk), Rendition.kind == "captions") == 2


async def test_silence_gives_an_empty_transcript(service):
    asset_id = await upload(service, silent_wav(), "quiet.wav", "speech", "audio/wav")
    assert (await settled(service, asset_id))["status"] == "ready"
    body = (await service.get(f"/api/v1/assets/{asset_id}/transcription", headers=service.api_auth)).json()
    assert (body["text"], body["segments"]) == ("", [])
    assert body["duration_seconds"] == pytest.approx(2.0)
    vtt = await service.get(local(next(c["url"] for c in body["captions"] if c["format"] == "vtt")))
    assert parse_webvtt(vtt.text) == []


async def test_a_corrupt_file_fails_once_with_a_reason(service):
    asset_id = await upload(service, corrupt_wav(), "broken.wav", "speech", "audio/wav")
    status = await settled(service, asset_id)
    assert status["status"] == "failed"
    [step] = status["steps"]
    assert (step["step"], step["status"], step["attempts"]) == ("transcribe", "failed", 1)
    assert "cannot" in step["error"] or "not a supported" in step["error"] or "no audio" in step["error"]
    assert "transcribe" in status["error"]
    error = assert_envelope(await service.get(f"/api/v1/assets/{asset_id}/transcription", headers=service.api_auth),
                            404, "not_found")
    assert error["details"]["step"] == "failed" and error["details"]["error"] == step["error"]


async def test_batch_queues_one_job_per_asset_and_reports_bad_ids_per_item(service):
    mine = await upload(service, silent_wav(1.0), "a.wav", "speech", "audio/wav")
    await settled(service, mine)
    theirs = (await service.post("/api/v1/assets", headers=service.other_api_auth, json={
        "profile": "speech", "original_name": "x.wav"})).json()["id"]
    unknown = str(uuid.uuid4())
    response = await service.post("/api/v1/transcriptions/batch", headers=service.api_auth, json={
        "asset_ids": [mine, "not-a-uuid", unknown, theirs, mine], "language": "en"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["queued"], body["failed"]) == (1, 3)
    items = {item["asset_id"]: item for item in body["items"]}
    assert list(items) == [mine, "not-a-uuid", unknown, theirs]  # in order, each once
    assert items[mine]["status"] == "queued" and items[mine]["job_id"]
    assert items["not-a-uuid"]["error"]["code"] == "validation_failed"
    assert items[unknown]["error"]["code"] == "not_found"
    assert items[theirs]["error"]["code"] == "not_found"  # another tenant's asset looks missing
    job = await ProcessingJob.select().where(ProcessingJob.id == uuid.UUID(items[mine]["job_id"])).first()
    assert job["asset"] == uuid.UUID(mine) and job["step"] == "transcribe"
    assert (await settled(service, mine))["status"] == "ready"


async def test_api_errors_use_the_envelope(service, talk):
    auth = service.api_auth
    missing = uuid.uuid4()
    assert_envelope(await service.get(f"/api/v1/assets/{missing}/transcription", headers=auth), 404, "not_found")
    assert_envelope(await service.get(f"/api/v1/assets/{talk}/transcription", headers=service.other_api_auth),
                    404, "not_found")
    assert_envelope(await service.get(f"/api/v1/assets/{talk}/transcription"), 401, "unauthorized")
    assert_envelope(await service.post(f"/api/v1/assets/{missing}/transcribe", headers=auth), 404, "not_found")
    for bad in ({"language": "English please"}, {"model": "../../etc"}, {"speed": 2}):
        assert_envelope(await service.post(f"/api/v1/assets/{talk}/transcribe", headers=auth, json=bad),
                        (400, 422))
    malformed = await service.post(f"/api/v1/assets/{talk}/transcribe", headers=auth | {
        "content-type": "application/json"}, content=b"{not json")
    assert_envelope(malformed, 400)
    for bad in ({}, {"asset_ids": []}, {"asset_ids": "x"}, {"asset_ids": [str(missing)] * 101}):
        assert_envelope(await service.post("/api/v1/transcriptions/batch", headers=auth, json=bad), (400, 422))
    assert_envelope(await service.get(f"/api/v1/sessions/{missing}/transcript", headers=auth), 404, "not_found")
    image = (await service.post("/api/v1/assets", headers=auth, json={
        "profile": "avatar", "original_name": "me.png"})).json()["id"]
    assert_envelope(await service.post(f"/api/v1/assets/{image}/transcribe", headers=auth), 422,
                    "validation_failed")


def test_words_of_the_reference_are_unique_enough():
    assert len(words(TEXT)) >= 15  # the WER bound above means something
    assert hashlib.sha256(TEXT.encode()).hexdigest()  # the text is fixed, not generated
