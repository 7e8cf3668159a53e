"""The video plugin's processors (probe, thumbnail, audio, mp4) on media generated here with PyAV: numbers,
output formats, limits, hostile input (empty, truncated, disguised, playlists) and the job runner."""

from __future__ import annotations

import hashlib
import io
import math
import socket
import struct
import uuid
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from mediasvc_video.audio import AudioProcessor
from mediasvc_video.mp4 import Mp4Processor, fit
from mediasvc_video.probe import ProbeProcessor
from mediasvc_video.thumbnail import ThumbnailProcessor, frame_time
from PIL import Image

from mediasvc.plugin import ProcessorResult
from mediasvc.plugins import PluginHost
from mediasvc.processing import PermanentProcessingError
from mediasvc.settings import load_settings
from mediasvc.testing import KitContext, make_context

# --- generated media ----------------------------------------------------------------------------------------


def make_video(path: Path, *, seconds: float = 3.0, width: int = 320, height: int = 240, fps: int = 25,
               audio: bool = True, rotation: int = 0, faststart: bool = False) -> Path:
    """H.264 frames whose red channel grows with time (frame i: red = 3*i), plus a 440 Hz sine AAC track."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as out:
        v = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if audio:
            a = out.add_stream("aac", rate=44100)
            a.layout = "mono"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_image(Image.new("RGB", (width, height), (min(255, 3 * i), 64, 128)))
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        if a is not None:
            rate, n, chunk = 44100, int(seconds * 44100), 1024
            for start in range(0, n, chunk):
                count = min(chunk, n - start)
                pcm = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * (start + k) / rate)))
                               for k in range(count))
                frame = av.AudioFrame(format="s16", layout="mono", samples=count)
                frame.planes[0].update(pcm + b"\0" * (frame.planes[0].buffer_size - len(pcm)))
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                out.mux(a.encode(frame))
            out.mux(a.encode(None))
    return path


def make_webm(path: Path) -> Path:
    """VP9 + Opus, 2 s, as a browser's MediaRecorder uploads."""
    with av.open(str(path), "w", format="webm") as out:
        v = out.add_stream("libvpx-vp9", rate=30)
        v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
        a = out.add_stream("libopus", rate=48000)
        a.layout = "mono"
        for i in range(60):
            frame = av.VideoFrame.from_image(Image.new("RGB", (160, 120), (i * 4, 0, 0)))
            frame.pts, frame.time_base = i, Fraction(1, 30)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        for start in range(0, 96000, 960):
            frame = av.AudioFrame(format="s16", layout="mono", samples=960)
            frame.planes[0].update(b"\x10\x00" * 960 + b"\0" * (frame.planes[0].buffer_size - 1920))
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            out.mux(a.encode(frame))
        out.mux(a.encode(None))
    return path


def make_wav(path: Path, *, seconds: float = 2.5, rate: int = 44100, channels: int = 2) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(
            struct.pack("<h", int(6000 * math.sin(2 * math.pi * 300 * k / rate))) * channels
            for k in range(int(seconds * rate))))
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    clip = make_video(d / "clip.mp4")
    data = clip.read_bytes()
    assert data.find(b"mdat") < data.find(b"moov")  # moov at the end: cutting the file loses it
    truncated = d / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    return {
        "clip": clip,
        "rotated": make_video(d / "rotated.mp4", seconds=1.0, rotation=90, audio=False),
        "wav": make_wav(d / "speech.wav"),
        "webm": make_webm(d / "recording.webm"),
        "truncated": truncated,
    }


# --- a small processor context on a real storage backend ----------------------------------------------------


@pytest.fixture
def make_ctx(tmp_path):
    async def make(source: Path | bytes, *, name: str = "original.mp4", kind: str = "video",
                   backend: str = "local", **overrides: Any) -> KitContext:
        settings = load_settings(env={}, data_dir=str(tmp_path / "data"), secret_key="x",
                                 **{"storage.backend": backend, **overrides})
        return await make_context(source, kind=kind, settings=settings, extension=name.rsplit(".", 1)[1])

    return make


def read_local(ctx: KitContext, key: str) -> bytes:
    path = ctx.storage.local_path(key)
    return Path(path).read_bytes()


def top_level_boxes(data: bytes) -> list[str]:
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


# --- probe --------------------------------------------------------------------------------------------------


async def test_probe_reports_duration_size_rate_and_codecs(make_ctx, media):
    ctx = await make_ctx(media["clip"])
    result = await ProbeProcessor().run(ctx)
    assert result.renditions == [] and ctx.asset["metadata"] == {}  # reported, never written into the asset
    info = result.metadata["probe"]
    assert abs(info["duration"] - 3.0) < 0.1
    assert (info["width"], info["height"], info["fps"], info["rotation"]) == (320, 240, 25.0, 0)
    assert (info["video_codec"], info["audio_codec"]) == ("h264", "aac")
    assert info["size_bytes"] == media["clip"].stat().st_size and info["bitrate"] > 0
    assert (info["container"], info["mime"]) == ("mov", "video/mp4")
    assert sorted(s["type"] for s in info["streams"]) == ["audio", "video"]
    assert info["sample_rate"] == 44100 and info["channels"] == 1
    assert ctx.progress_seen[-1] == 100


async def test_probe_reads_the_display_rotation_and_an_audio_only_file(make_ctx, media):
    ctx = await make_ctx(media["rotated"])
    info = (await ProbeProcessor().run(ctx)).metadata["probe"]
    assert info["rotation"] == 90 and (info["display_width"], info["display_height"]) == (240, 320)
    assert info["has_audio"] is False

    ctx = await make_ctx(media["wav"], name="original.wav", kind="audio")
    info = (await ProbeProcessor().run(ctx)).metadata["probe"]
    assert abs(info["duration"] - 2.5) < 0.05 and info["has_video"] is False
    assert (info["audio_codec"], info["sample_rate"], info["channels"]) == ("pcm_s16le", 44100, 2)


@pytest.mark.parametrize(("limits", "reason"), [
    ({"max_duration_seconds": 2}, "duration 3s is over the limit of 2s"),
    ({"max_width": 300}, "video size 320x240 is over the limit of 300x4320"),
    ({"max_streams": 1}, "2 streams is over the limit of 1"),
])
async def test_probe_rejects_media_over_the_configured_limits(make_ctx, media, limits, reason):
    ctx = await make_ctx(media["clip"], plugins={"video": limits})
    with pytest.raises(PermanentProcessingError, match=reason):
        await ProbeProcessor().run(ctx)


async def test_probe_default_limits_accept_the_clip_and_an_object_store_original(make_ctx, media):
    ctx = await make_ctx(media["clip"], backend="memory")  # no local path: streamed to a temp file
    assert ctx.storage.local_path(ctx.asset["storage_key"]) is None
    result = await ProbeProcessor().run(ctx)
    assert abs(result.metadata["probe"]["duration"] - 3.0) < 0.1


# --- thumbnail ----------------------------------------------------------------------------------------------


def test_thumbnail_time_is_one_second_or_ten_percent_of_short_clips():
    assert frame_time(600) == 1.0 and frame_time(10) == 1.0
    assert frame_time(3) == pytest.approx(0.3) and frame_time(None) == 0.0


async def test_thumbnail_and_poster_are_jpegs_of_the_frame_at_ten_percent(make_ctx, media):
    ctx = await make_ctx(media["clip"])
    result = await ThumbnailProcessor().run(ctx)
    assert isinstance(result, ProcessorResult) and result.metadata == {}
    outs = {o.kind: o for o in result.renditions}
    assert set(outs) == {"thumbnail", "poster"}
    folder = ctx.asset["storage_key"].rsplit("/", 1)[0]
    assert outs["thumbnail"].storage_key == f"{folder}/thumb.jpg"
    assert outs["poster"].storage_key == f"{folder}/poster.jpg"
    thumb = Image.open(io.BytesIO(read_local(ctx, outs["thumbnail"].storage_key)))
    thumb.load()
    assert thumb.format == "JPEG" and thumb.size == (320, 240)
    assert (outs["thumbnail"].width, outs["thumbnail"].height) == (320, 240)
    red = thumb.getpixel((160, 120))[0]
    assert 12 <= red <= 36, red  # frame 7-8 of 75 (0.3 s): red 21-24, not frame 0 (0) nor 1 s (75)
    poster = Image.open(io.BytesIO(read_local(ctx, outs["poster"].storage_key)))
    assert poster.format == "JPEG" and poster.size == (320, 240)  # source size: under 1280, never upscaled
    assert outs["poster"].size_bytes == len(read_local(ctx, outs["poster"].storage_key))
    # a re-run writes the same keys: nothing is duplicated
    again = (await ThumbnailProcessor().run(ctx)).renditions
    assert sorted(o.storage_key for o in again) == sorted(o.storage_key for o in outs.values())
    keys = sorted([info.key async for info in ctx.storage.list(folder + "/")])
    assert keys == sorted([ctx.asset["storage_key"], f"{folder}/thumb.jpg", f"{folder}/poster.jpg"])


async def test_thumbnail_of_a_rotated_video_is_upright(make_ctx, media):
    ctx = await make_ctx(media["rotated"])
    outs = {o.kind: o for o in (await ThumbnailProcessor().run(ctx)).renditions}
    assert (outs["thumbnail"].width, outs["thumbnail"].height) == (320, 427)
    poster = Image.open(io.BytesIO(read_local(ctx, outs["poster"].storage_key)))
    assert poster.size == (240, 320)


# --- audio --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "name", "kind", "seconds"), [
    ("clip", "original.mp4", "video", 3.0),
    ("wav", "original.wav", "audio", 2.5),
])
async def test_audio_is_16k_mono_wav_of_the_right_length(make_ctx, media, source, name, kind, seconds):
    ctx = await make_ctx(media[source], name=name, kind=kind)
    [out] = (await AudioProcessor().run(ctx)).renditions
    assert (out.kind, out.name, out.content_type) == ("audio", "default", "audio/wav")
    assert out.storage_key.endswith("/audio.wav")
    with wave.open(io.BytesIO(read_local(ctx, out.storage_key))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        duration = w.getnframes() / 16000
        pcm = w.readframes(w.getnframes())
    assert abs(duration - seconds) < 0.05, duration
    assert out.duration_seconds == pytest.approx(duration, abs=0.001)
    peak = max(abs(v) for (v,) in struct.iter_unpack("<h", pcm[32000:64000]))
    assert peak > 3000  # the sine survived, not silence
    assert ctx.progress_seen and ctx.progress_seen[-1] == 100


async def test_audio_of_a_silent_video_is_nothing_but_of_an_audio_asset_without_audio_fails(make_ctx, media):
    ctx = await make_ctx(media["rotated"])
    assert await AudioProcessor().run(ctx) == ProcessorResult()
    ctx = await make_ctx(media["rotated"], kind="audio")
    with pytest.raises(PermanentProcessingError, match="no audio stream"):
        await AudioProcessor().run(ctx)


# --- mp4 ----------------------------------------------------------------------------------------------------


def test_fit_never_upscales_and_keeps_dimensions_even():
    assert fit(320, 240, 1920, 1080) == (320, 240)
    assert fit(3840, 2160, 1920, 1080) == (1920, 1080)
    assert fit(1080, 1920, 1920, 1080) == (1080, 1920)  # portrait fits the same box turned
    assert fit(321, 241, 1920, 1080) == (320, 240)
    assert all(v % 2 == 0 for v in fit(1001, 777, 640, 360))


async def test_mp4_is_h264_aac_faststart_and_decodes_fully(make_ctx, media):
    ctx = await make_ctx(media["clip"])
    [out] = (await Mp4Processor().run(ctx)).renditions
    assert (out.kind, out.name, out.content_type) == ("mp4", "default", "video/mp4")
    assert out.storage_key.endswith("/video.mp4") and (out.width, out.height) == (320, 240)
    data = read_local(ctx, out.storage_key)
    assert out.size_bytes == len(data)
    boxes = top_level_boxes(data)
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # faststart
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"
        copied_bitrate = c.streams.audio[0].codec_context.bit_rate
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == 75
    # already H.264/AAC: copied (tests/test_mp4_remux.py), so the audio is the source's, not re-encoded at 128k
    assert out.metadata["method"] == "copy"
    with av.open(str(media["clip"])) as source:
        assert abs(copied_bitrate - source.streams.audio[0].codec_context.bit_rate) < 1000  # ~70k, not 128k
    assert abs(out.duration_seconds - 3.0) < 0.1
    seen = ctx.progress_seen
    assert seen and seen[-1] == 100 and seen == sorted(seen)


async def test_mp4_applies_rotation_and_scales_down_to_the_configured_box(make_ctx, media):
    ctx = await make_ctx(media["rotated"], plugins={"video": {"mp4_max_width": 200, "mp4_max_height": 200}})
    [out] = (await Mp4Processor().run(ctx)).renditions
    assert (out.width, out.height) == (150, 200)  # upright 240x320 fitted into 200x200, even
    with av.open(io.BytesIO(read_local(ctx, out.storage_key))) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (150, 200)
        assert not c.streams.audio
        assert sum(1 for _ in c.decode(v)) == 25


def test_mp4_and_audio_report_progress_by_timestamp(media, tmp_path):
    from mediasvc_video.audio import extract_wav
    from mediasvc_video.limits import VideoLimits
    from mediasvc_video.mp4 import transcode

    for run in (lambda report: transcode(media["clip"], tmp_path / "v.mp4", VideoLimits(), report),
                lambda report: extract_wav(media["clip"], tmp_path / "a.wav", report)):
        seen: list[float] = []
        run(seen.append)
        assert len(seen) > 20 and seen == sorted(seen) and 0 <= seen[0] < 10 and 90 < seen[-1] < 100


async def test_progress_reaches_the_context_while_the_work_runs_in_a_thread():
    import time

    from mediasvc_video.media import run_with_progress

    class Recorder:
        def __init__(self):
            self.reported: list[float] = []

        async def progress(self, percent, message=""):
            self.reported.append(percent)

    def work(report):
        for p in (10, 50, 90):
            report(p)
            time.sleep(0.3)
        return "done"

    ctx = Recorder()
    assert await run_with_progress(ctx, work) == "done"
    assert ctx.reported == [10, 50, 90]


async def test_a_browser_webm_recording_is_probed_and_transcoded(make_ctx, media):
    ctx = await make_ctx(media["webm"], name="original.webm")
    info = (await ProbeProcessor().run(ctx)).metadata["probe"]
    assert (info["container"], info["video_codec"], info["audio_codec"]) == ("matroska", "vp9", "opus")
    assert abs(info["duration"] - 2.0) < 0.1
    [out] = (await Mp4Processor().run(ctx)).renditions
    with av.open(io.BytesIO(read_local(ctx, out.storage_key))) as c:
        assert [s.codec_context.name for s in c.streams] == ["h264", "aac"]
        assert sum(1 for _ in c.decode(video=0)) == 60


# --- hostile and broken input -------------------------------------------------------------------------------


@pytest.fixture
def bait(tmp_path, media):
    """A playlist (named .mp4) pointing at a valid local video and at URLs: following any would be a leak."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(media["rotated"].read_bytes())
    port = listener.getsockname()[1]
    playlist = (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{secret}\n#EXTINF:10,\n{secret}\n"
                f"#EXTINF:10,\nhttp://127.0.0.1:9/x\n#EXTINF:10,\nhttp://127.0.0.1:{port}/y\n"
                "#EXT-X-ENDLIST\n")
    yield playlist.encode(), listener
    listener.close()


BAD = {
    "empty": lambda media: b"",
    "truncated": lambda media: media["truncated"].read_bytes(),
    "png": lambda media: b"\x89PNG\r\n\x1a\n" + b"\0" * 200,
    "ftyp_garbage": lambda media: b"\0\0\0\x18ftypisom\0\0\0\0isomiso2" + bytes(range(256)) * 20,
}


@pytest.mark.parametrize("processor", [ProbeProcessor, ThumbnailProcessor, AudioProcessor, Mp4Processor])
@pytest.mark.parametrize("case", [*BAD, "playlist"])
async def test_bad_or_disguised_input_fails_permanently(make_ctx, media, bait, processor, case):
    playlist, listener = bait
    data = playlist if case == "playlist" else BAD[case](media)
    ctx = await make_ctx(data)
    with pytest.raises(PermanentProcessingError) as raised:
        await processor().run(ctx)
    if case == "playlist":  # av.open(..., format="hls") would read the file: the sniffed demuxer is used
        assert "not a supported audio/video file" in str(raised.value)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing connected to the URL in the playlist
        assert "probe" not in ctx.asset["metadata"]  # and the valid file it names was never probed


async def test_plugin_registers_the_four_processors(tmp_path):
    settings = load_settings(env={}, data_dir=str(tmp_path), secret_key="x")
    processors = PluginHost(settings).processors
    for name, kinds in {"probe": {"video", "audio"}, "thumbnail": {"video"}, "audio": {"video", "audio"},
                        "mp4": {"video"}}.items():
        assert processors[name].kinds == kinds
        assert processors[name].timeout_seconds > 0


# --- end to end through the job runner ----------------------------------------------------------------------


async def test_video_profile_runs_through_the_job_runner_to_ready(make_settings, media):
    import asyncio

    from mediasvc.app import create_app
    from mediasvc.auth import get_or_create_tenant
    from mediasvc.ingest.assets import create_uploaded_asset, reserve_key
    from mediasvc.tables import Asset, ProcessingJob, Rendition
    from tests.conftest import serve_in_process

    settings = make_settings(**{
        "run_worker_in_app": True,
        "queue.name": f"video-{uuid.uuid4().hex[:8]}",
        "profiles": {"clip": {"kind": "video", "formats": ["mp4"], "max_bytes": 50_000_000, "bucket": "clips",
                              "steps": ["probe", "thumbnail", "audio", "mp4"]}},
    })
    app = create_app(settings)
    async with serve_in_process(app):
        services = app.state.services
        data = media["clip"].read_bytes()
        tenant = await get_or_create_tenant(f"video-{uuid.uuid4().hex[:6]}")
        asset_id, key = reserve_key("video", settings.profiles["clip"], "mp4")
        await services.storage.put(key, data)
        await create_uploaded_asset(services, asset_id=asset_id, tenant_id=tenant, profile_name="clip",
                                    original_name="clip.mp4", storage_key=key, size_bytes=len(data),
                                    sha256=hashlib.sha256(data).hexdigest(), content_type="video/mp4",
                                    method="test")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 40
        while loop.time() < deadline:
            row = await Asset.select().where(Asset.id == asset_id).output(load_json=True).first()
            if row["status"] in ("ready", "failed"):
                break
            await asyncio.sleep(0.1)
        assert row["status"] == "ready", row["error"]
        assert abs(row["metadata"]["probe"]["duration"] - 3.0) < 0.1
        jobs = await ProcessingJob.select().where(ProcessingJob.asset == asset_id)
        assert {j["step"]: j["status"] for j in jobs} == dict.fromkeys(["probe", "thumbnail", "audio", "mp4"],
                                                                        "succeeded")
        renditions = await Rendition.select().where(Rendition.asset == asset_id)
        assert sorted((r["kind"], r["name"]) for r in renditions) == [
            ("audio", "default"), ("mp4", "default"), ("poster", "default"), ("thumbnail", "default")]
        for r in renditions:
            assert (await services.storage.head(r["storage_key"])).size == r["size_bytes"] > 0
