"""The sample plugin's tests, on the real service through mediasvc's testing kit."""

from __future__ import annotations

import array
import hashlib
import io
import math
import wave

import pytest
from PIL import Image

from mediasvc.plugin import PermanentProcessingError
from mediasvc.testing import run_processor
from mediasvc_sample import asset_panels
from mediasvc_sample.processors import HEIGHT, WIDTH, ChecksumProcessor, WaveformProcessor

pytest_plugins = ["mediasvc.testing"]  # the fixtures mediasvc_app, mediasvc_settings, mediasvc_database_url


def tone_then_silence(seconds: float = 1.0, loudness: float = 0.5) -> bytes:
    """A WAV: a 440 Hz tone at ``loudness``, then as long a silence."""
    rate = 16000
    count = int(rate * seconds)
    tone = [int(loudness * 32767 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(count)]
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(array.array("h", tone + [0] * len(tone)).tobytes())
    return out.getvalue()


async def test_checksum_reports_sha256_and_size():
    data = b"%PDF-1.4 not much of a document"
    run = await run_processor(ChecksumProcessor(), data, kind="document", extension="pdf")
    assert run.result.metadata == {"sample_checksum": {"sha256": hashlib.sha256(data).hexdigest(),
                                                       "bytes": len(data)}}
    assert run.result.renditions == [] and run.progress[-1] == 100


async def test_waveform_draws_the_tone_and_not_the_silence():
    run = await run_processor(WaveformProcessor(), tone_then_silence(), kind="audio", extension="wav")
    (rendition,) = run.result.renditions
    assert (rendition.kind, rendition.name, rendition.content_type) == ("waveform", "default", "image/png")
    assert rendition.storage_key == f"{run.context.folder}/waveform.png"
    assert run.result.metadata["sample_waveform"]["seconds"] == pytest.approx(2.0, abs=0.05)
    assert run.result.metadata["sample_waveform"]["peak"] == pytest.approx(0.5, abs=0.02)
    image = Image.open(io.BytesIO(await run.context.storage.get_bytes(rendition.storage_key)))
    assert image.size == (WIDTH, HEIGHT) == (rendition.width, rendition.height)
    column = [image.getpixel((x, HEIGHT // 4)) for x in (WIDTH // 4, WIDTH * 3 // 4)]
    assert column[0] != (255, 255, 255) and column[1] == (255, 255, 255)  # drawn where the tone is
    assert run.progress == [80, 100]


async def test_a_file_without_audio_fails_permanently():
    with pytest.raises(PermanentProcessingError):
        await run_processor(WaveformProcessor(), b"GIF89a not audio at all", kind="audio", extension="wav")


def test_the_panel_shows_what_the_processors_found():
    checksum = {"sha256": "ab", "bytes": 2}
    (panel,) = asset_panels(request=None, asset={"metadata": {"sample_checksum": checksum}})
    assert panel.template == "mediasvc_sample/panel.html" and panel.context == {"sample_checksum": checksum}
    assert asset_panels(request=None, asset={"metadata": {}}) == []


async def test_a_profile_runs_both_steps_in_the_service(mediasvc_app):
    podcast = {"kind": "audio", "formats": ["wav"], "max_bytes": 10_000_000, "bucket": "podcasts",
               "steps": ["sample_checksum", "sample_waveform"]}
    async with mediasvc_app(profiles={"podcast": podcast}) as app:
        asset_id = await app.upload(tone_then_silence(), profile="podcast", file_name="episode.wav",
                                    content_type="audio/wav")
        asset = await app.wait_for_asset(asset_id)
        assert asset["status"] == "ready", asset["error"]
        assert [(r["kind"], r["name"]) for r in asset["renditions"]] == [("waveform", "default")]
        assert asset["metadata"]["sample_waveform"]["peak"] == pytest.approx(0.5, abs=0.02)
        event = await app.events.wait_for("media.processed", asset_id=str(asset_id))
        assert event.data["steps"] == {"sample_checksum": "succeeded", "sample_waveform": "succeeded"}
