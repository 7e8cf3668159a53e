"""A recording session's transcript: three overlapping chunks of espeak-ng speech are uploaded, each is
transcribed by its own job as it arrives, and the session transcript is stitched without the words the overlaps
repeat."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from mediasvc_transcription.captions import parse_webvtt
from mediasvc_transcription.sessions import ChunkTranscript, chunk_transcript_key
from mediasvc_transcription.wer import word_error_rate, words

from mediasvc.app import create_app
from mediasvc.auth import create_api_key
from mediasvc.settings import load_settings
from mediasvc.tables import Chunk, Transcript
from tests.conftest import serve_in_process
from tests.speech import HAVE_ESPEAK, read_mono, speak_wav, write_wav
from tests.test_transcription_api import local
from tests.test_whisper_models import shared_models_dir

pytestmark = [pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed"), pytest.mark.timeout(300)]

ENGINE = os.environ.get("MEDIASVC_TEST_TRANSCRIPTION_ENGINE", "whispercpp")  # the default engine
# every word once, so a word that shows up twice in the stitched text was kept from both sides of a seam
TEXT = ("Yesterday our small team finished the new website, fixed several painful problems, answered customer "
        "questions, wrote clear documentation, and celebrated with fresh coffee.")
OVERLAP = 1.5
RATE = 16000


def overlapping_chunks(folder: Path, parts: int = 3) -> list[bytes]:
    """The speech cut into ``parts`` WAV chunks, each starting ``OVERLAP`` seconds before the previous one ends."""
    samples = read_mono(speak_wav(TEXT, folder / "speech.wav"))
    overlap = int(OVERLAP * RATE)
    length = (len(samples) + (parts - 1) * overlap) // parts + 1
    chunks = []
    for index in range(parts):
        start = index * (length - overlap)
        path = write_wav(folder / f"chunk{index}.wav", samples[start:start + length], RATE)
        chunks.append(path.read_bytes())
    return chunks


@pytest.fixture(scope="module")
async def service(database_url, tmp_path_factory):
    settings = load_settings(env={}, **{
        "database_url": database_url, "queue.url": os.environ.get("MEDIASVC_TEST_REDIS", "redis://127.0.0.1:6379/0"),
        "queue.name": f"tr-sessions-{uuid.uuid4().hex[:8]}", "data_dir": str(tmp_path_factory.mktemp("data")),
        "secret_key": "test-secret-key", "run_worker_in_app": True,
        "models_dir": str(shared_models_dir(tmp_path_factory)),
        "plugins": {"transcription": {"engine": ENGINE, "threads": 2}},
        "profiles": {"voice_note": {"kind": "audio", "formats": ["wav"], "max_bytes": 10_000_000,
                                    "bucket": "notes", "steps": ["probe"]}},
    })
    app = create_app(settings)
    async with serve_in_process(app) as http:
        key, _ = await create_api_key(f"trs-{uuid.uuid4().hex[:8]}")
        http.services = app.state.services
        http.api_auth = {"Authorization": f"Bearer {key}"}
        yield http


async def poll(fetch, done, timeout: float = 240):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = await fetch()
        if done(value):
            return value
        await asyncio.sleep(0.25)
    raise AssertionError(f"not done in time: {value}")


async def test_chunks_are_transcribed_as_they_arrive_and_stitched_without_repeats(service, tmp_path):
    auth = service.api_auth
    session = (await service.post("/api/v1/sessions", headers=auth, json={
        "profile": "audio_response", "client_id": f"interview-{uuid.uuid4().hex[:6]}", "expected_chunks": 3})).json()
    sid = session["id"]
    for index, data in enumerate(overlapping_chunks(tmp_path)):
        response = await service.post(f"/api/v1/sessions/{sid}/chunks", headers=auth, data={
            "sequence_index": str(index), "total_chunks": "3", "overlap_seconds": str(OVERLAP if index else 0)},
            files={"file": (f"chunk{index}.wav", data, "audio/wav")})
        assert response.status_code == 201, response.text

    async def transcript():
        return await service.get(f"/api/v1/sessions/{sid}/transcript", headers=auth)

    # while the session is active, the chunk transcripts come in by themselves (one job per chunk)
    state = await poll(transcript, lambda r: r.status_code == 202 and r.json()["chunks_transcribed"] == 3)
    assert state.json()["status"] == "session_active" and state.json()["chunks"] == 3

    assert (await service.post(f"/api/v1/sessions/{sid}/complete", headers=auth)).status_code == 200
    response = await poll(transcript, lambda r: r.status_code == 200, timeout=30)
    body = response.json()
    assert body["session_id"] == sid and body["asset_id"] is None and body["language"] == "en"

    stitched = words(body["text"])
    reference = Counter(words(TEXT))
    # a seam that kept both copies repeats content words; short words ("and") may also come from a mishearing
    repeated = {w: n for w, n in Counter(stitched).items() if len(w) > 3 and n > max(reference[w], 1)}
    assert not repeated, body["text"]
    assert word_error_rate(TEXT, body["text"]) <= 0.3, body["text"]
    captions = {c["format"]: c for c in body["captions"]}
    assert set(captions) == {"vtt", "srt"} and captions["vtt"]["language"] == "en"
    vtt = await service.get(local(captions["vtt"]["url"]))
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
    cues = parse_webvtt(vtt.text)
    assert cues and word_error_rate(TEXT, " ".join(c[2] for c in cues)) <= 0.3
    starts = [s["start"] for s in body["segments"]]
    assert starts == sorted(starts) and body["segments"][-1]["end"] <= body["duration_seconds"] + 0.01

    # the overlaps were really transcribed twice: the plain concatenation repeats words the stitch removed
    storage = service.services.storage
    chunks = await Chunk.select().where(Chunk.session == uuid.UUID(sid)).order_by(Chunk.sequence_index)
    texts = [msgspec.json.decode(await storage.get_bytes(chunk_transcript_key(c["storage_key"])),
                                 type=ChunkTranscript).transcription.text for c in chunks]
    naive = Counter(w for text in texts for w in words(text))
    assert sum(n - 1 for w, n in naive.items() if len(w) > 3 and n > 1) >= 2, texts

    rows = await Transcript.select().where(Transcript.session == uuid.UUID(sid))
    assert len(rows) == 1 and rows[0]["asset"] is None and rows[0]["text"] == body["text"]


async def test_unknown_sessions_and_sessions_without_chunks_are_404(service):
    auth = service.api_auth
    response = await service.get(f"/api/v1/sessions/{uuid.uuid4()}/transcript", headers=auth)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    empty = (await service.post("/api/v1/sessions", headers=auth, json={"profile": "audio_response"})).json()
    response = await service.get(f"/api/v1/sessions/{empty['id']}/transcript", headers=auth)
    assert response.status_code == 404 and "no chunks" in response.json()["error"]["message"]


async def test_chunks_of_a_profile_without_the_transcribe_step_are_not_transcribed(service, tmp_path):
    from mediasvc_transcription.sessions import transcribe_chunk

    auth = service.api_auth
    session = (await service.post("/api/v1/sessions", headers=auth, json={"profile": "voice_note"})).json()
    data = overlapping_chunks(tmp_path, parts=1)[0]
    response = await service.post(f"/api/v1/sessions/{session['id']}/chunks", headers=auth,
                                  data={"sequence_index": "0"}, files={"file": ("c.wav", data, "audio/wav")})
    assert response.status_code == 201, response.text
    services = service.services
    ctx = {"settings": services.settings, "storage": services.storage, "host": services.host,
           "queue": services.queue}
    result = await transcribe_chunk(ctx, chunk_id=response.json()["id"])
    assert result["status"] == "skipped" and "voice_note" in result["reason"]
    key = chunk_transcript_key((await Chunk.select().where(Chunk.id == uuid.UUID(response.json()["id"])).first()
                                )["storage_key"])
    assert await services.storage.head(key) is None
