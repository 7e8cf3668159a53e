"""The ``hls`` processor on sources generated here with PyAV: the ladder (no upscaling), the master playlist, ~4 s
segments aligned across rungs, a full decode of every rung, progress and re-runs."""

from __future__ import annotations

import hashlib
import json
import math
import struct
import time
import uuid
from fractions import Fraction
from pathlib import Path

import av
import pytest
from mediasvc_video.hls import SEGMENT_SECONDS, HlsProcessor
from mediasvc_video.hls_ladder import (
    codecs_string,
    parse_attributes,
    parse_master_playlist,
    parse_media_playlist,
    plan_ladder,
    sps_profile_level,
)
from PIL import Image, ImageDraw

from mediasvc.plugin import ProcessorResult
from mediasvc.plugins import PluginHost
from mediasvc.processing import PermanentProcessingError
from mediasvc.settings import load_settings
from mediasvc.testing import KitContext, make_context

FPS = 25


def make_source(path: Path, *, seconds: float, width: int, height: int, audio: bool = True,
                rotation: int = 0) -> Path:
    """Low-complexity H.264 (ultrafast, a flat colour that changes with time and a moving box) + AAC mono sine."""
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if audio:
            a = out.add_stream("aac", rate=44100)
            a.layout = "mono"
        box = max(8, height // 8)
        for i in range(int(seconds * FPS)):
            image = Image.new("RGB", (width, height), (min(255, i), 64, 128))
            x = (i * 7) % max(1, width - box)
            ImageDraw.Draw(image).rectangle((x, box, x + box, 2 * box), fill=(255, 255, 0))
            frame = av.VideoFrame.from_image(image)
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        if a is not None:
            rate, n, chunk = 44100, int(seconds * 44100), 1024
            pcm = struct.pack(f"<{n}h", *(int(8000 * math.sin(2 * math.pi * 440 * k / rate)) for k in range(n)))
            for start in range(0, n, chunk):
                count = min(chunk, n - start)
                frame = av.AudioFrame(format="s16", layout="mono", samples=count)
                data = pcm[2 * start: 2 * (start + count)]
                frame.planes[0].update(data + b"\0" * (frame.planes[0].buffer_size - len(data)))
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                out.mux(a.encode(frame))
            out.mux(a.encode(None))
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hls-src")
    return {"720p": make_source(d / "hd.mp4", seconds=9, width=1280, height=720),
            "240p": make_source(d / "small.mp4", seconds=3, width=320, height=240),
            "rotated": make_source(d / "rotated.mp4", seconds=1, width=640, height=480, audio=False,
                                   rotation=90)}


@pytest.fixture
def make_ctx(tmp_path):
    async def make(source: Path) -> KitContext:
        settings = load_settings(env={}, data_dir=str(tmp_path / "data"), secret_key="x",
                                 **{"storage.backend": "local"})
        return await make_context(source, kind="video", settings=settings)

    return make


async def text(ctx: KitContext, key: str) -> str:
    return (await ctx.storage.get_bytes(key)).decode()


async def keys_under(ctx: KitContext, prefix: str) -> set[str]:
    return {o.key async for o in ctx.storage.list(prefix)}


def decode_rung(blob: bytes, path: Path) -> tuple[int, set[tuple[int, int]], int]:
    """Frames, picture sizes and audio frames of a rung's concatenated TS segments."""
    path.write_bytes(blob)
    frames, sizes, audio = 0, set(), 0
    with av.open(str(path), format="mpegts", options={"protocol_whitelist": "file"}) as c:
        for frame in c.decode(*c.streams):
            if isinstance(frame, av.VideoFrame):
                frames += 1
                sizes.add((frame.width, frame.height))
            else:
                audio += 1
    return frames, sizes, audio


# --- pure helpers --------------------------------------------------------------------------------------------


def test_ladder_never_upscales():
    assert [(r.name, r.width, r.height, r.bitrate) for r in plan_ladder(1920, 1080)] == [
        ("360p", 640, 360, 800_000), ("480p", 854, 480, 1_400_000), ("720p", 1280, 720, 2_800_000),
        ("1080p", 1920, 1080, 5_000_000)]
    assert [r.name for r in plan_ladder(1280, 720)] == ["360p", "480p", "720p"]
    assert [(r.name, r.width, r.height) for r in plan_ladder(720, 1280)][-1] == ("720p", 720, 1280)  # portrait
    assert [(r.name, r.width, r.height, r.bitrate) for r in plan_ladder(320, 240)] == [
        ("240p", 320, 240, 800_000)]
    assert [(r.width, r.height) for r in plan_ladder(321, 181)] == [(320, 180)]


def test_playlist_helpers():
    assert parse_attributes('BANDWIDTH=1,CODECS="a,b",RESOLUTION=2x3') == {
        "BANDWIDTH": "1", "CODECS": "a,b", "RESOLUTION": "2x3"}
    assert parse_media_playlist("#EXTM3U\n#EXTINF:4.000000,\nseg_000.ts\n#EXTINF:1.5,\nseg_001.ts\n") == [
        (4.0, "seg_000.ts"), (1.5, "seg_001.ts")]
    sps = b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x67\x64\x00\x1f\xac"
    assert sps_profile_level(sps) == (0x64, 0x00, 0x1F)
    assert codecs_string((0x64, 0, 0x1F), True) == "avc1.64001f,mp4a.40.2"
    assert codecs_string((0x4D, 0x40, 0x1E), False) == "avc1.4d401e"


# --- the processor -------------------------------------------------------------------------------------------


async def test_hls_ladder_from_a_720p_source(make_ctx, sources, tmp_path):
    ctx = await make_ctx(sources["720p"])
    started = time.perf_counter()
    result = await HlsProcessor().run(ctx)
    elapsed = time.perf_counter() - started
    print(f"\n9 s 1280x720 @25 fps through the hls ladder: {elapsed:.2f} s wall")

    folder = ctx.asset["storage_key"].rsplit("/", 1)[0]
    assert isinstance(result, ProcessorResult) and result.metadata == {} and result.events == []
    master_row, *rungs = result.renditions
    assert (master_row.kind, master_row.name, master_row.storage_key) == ("hls", "master",
                                                                          f"{folder}/hls/master.m3u8")
    assert master_row.metadata["rungs"] == ["360p", "480p", "720p"]
    assert [(r.kind, r.name, r.width, r.height, r.bitrate) for r in rungs] == [
        ("hls", "360p", 640, 360, 800_000), ("hls", "480p", 854, 480, 1_400_000),
        ("hls", "720p", 1280, 720, 2_800_000)]
    assert all(r.storage_key == f"{folder}/hls/{r.name}/index.m3u8" for r in rungs)

    master = await text(ctx, master_row.storage_key)
    assert master.startswith("#EXTM3U\n")
    variants = parse_master_playlist(master)
    assert [v["URI"] for v in variants] == ["360p/index.m3u8", "480p/index.m3u8", "720p/index.m3u8"]
    assert [v["RESOLUTION"] for v in variants] == ["640x360", "854x480", "1280x720"]
    for v in variants:
        assert int(v["BANDWIDTH"]) >= int(v["AVERAGE-BANDWIDTH"]) > 100_000
        video, audio = v["CODECS"].split(",")
        assert audio == "mp4a.40.2" and video.startswith("avc1.64")  # High profile, level from the SPS
        assert len(video) == len("avc1.64001f") and int(video[-2:], 16) in (30, 31, 32, 40, 41)
    assert int(variants[0]["BANDWIDTH"]) < int(variants[2]["BANDWIDTH"])

    durations: list[list[float]] = []
    for rung in rungs:
        playlist = await text(ctx, rung.storage_key)
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and playlist.rstrip().endswith("#EXT-X-ENDLIST")
        target = int(playlist.split("#EXT-X-TARGETDURATION:", 1)[1].split()[0])
        assert target <= SEGMENT_SECONDS + 1
        segments = parse_media_playlist(playlist)
        assert [u for _, u in segments] == [f"seg_{i:03d}.ts" for i in range(len(segments))]
        assert all(d <= target + 0.5 for d, _ in segments)
        assert abs(sum(d for d, _ in segments) - 9.0) < 0.2
        durations.append([d for d, _ in segments])
        blob = b"".join([await ctx.storage.get_bytes(f"{folder}/hls/{rung.name}/{u}") for _, u in segments])
        frames, sizes, audio = decode_rung(blob, tmp_path / f"{rung.name}.ts")
        assert abs(frames - 9 * FPS) <= 2 and sizes == {(rung.width, rung.height)} and audio > 0
        # every segment starts with a keyframe (independently decodable)
        for _, u in segments:
            with av.open(str(ctx.storage.local_path(f"{folder}/hls/{rung.name}/{u}")), format="mpegts") as c:
                first = next(c.decode(video=0))
                assert first.key_frame
    assert len({len(d) for d in durations}) == 1 and len(durations[0]) == 3  # 4 + 4 + 1 s
    for other in durations[1:]:
        assert all(abs(a - b) <= 0.05 for a, b in zip(durations[0], other, strict=True))
    assert abs(durations[0][0] - 4.0) <= 0.05

    # one rendition.ready per rung, smallest first, each once its playlist and segments are stored; the first
    # while the rest of the ladder is not there yet (the master listing the first rung already is: playable early)
    assert [(t, d["rung"]) for t, d, _ in ctx.events] == [("rendition.ready", r.name) for r in rungs]
    for (_, data, stored), rung, variant in zip(ctx.events, rungs, variants, strict=True):
        assert data["playlist_key"] == rung.storage_key and data["playlist_key"] in stored
        assert data["resolution"] == variant["RESOLUTION"] and data["bandwidth"] == int(variant["BANDWIDTH"])
        assert all(f"{folder}/hls/{rung.name}/seg_{i:03d}.ts" in stored for i in range(3))
    first_stored = ctx.events[0][2]
    assert master_row.storage_key in first_stored and rungs[-1].storage_key not in first_stored

    # progress went through intermediate values, in order, and ended at 100
    middle = [p for p in ctx.progress_seen if 0 < p < 95]
    assert middle and ctx.progress_seen == sorted(ctx.progress_seen) and ctx.progress_seen[-1] == 100
    assert await keys_under(ctx, f"{folder}/hls/") == {
        f"{folder}/hls/master.m3u8",
        *(f"{folder}/hls/{r.name}/index.m3u8" for r in rungs),
        *(f"{folder}/hls/{r.name}/seg_{i:03d}.ts" for r in rungs for i in range(3))}


async def test_small_source_gets_one_rung_and_a_rerun_leaves_no_stale_files(make_ctx, sources, tmp_path):
    ctx = await make_ctx(sources["240p"])
    folder = ctx.asset["storage_key"].rsplit("/", 1)[0]
    # leftovers of an earlier, longer run with more rungs
    stale = {f"{folder}/hls/240p/seg_007.ts", f"{folder}/hls/720p/index.m3u8", f"{folder}/hls/720p/seg_000.ts"}
    for key in stale:
        await ctx.storage.put(key, b"old")
    out = (await HlsProcessor().run(ctx)).renditions
    assert [(r.name, r.width, r.height) for r in out] == [("master", 320, 240), ("240p", 320, 240)]
    variants = parse_master_playlist(await text(ctx, out[0].storage_key))
    assert [(v["URI"], v["RESOLUTION"]) for v in variants] == [("240p/index.m3u8", "320x240")]
    segments = parse_media_playlist(await text(ctx, out[1].storage_key))
    assert len(segments) == 1 and abs(segments[0][0] - 3.0) < 0.1
    expected = {f"{folder}/hls/master.m3u8", f"{folder}/hls/240p/index.m3u8", f"{folder}/hls/240p/seg_000.ts"}
    assert await keys_under(ctx, f"{folder}/hls/") == expected
    blob = await ctx.storage.get_bytes(f"{folder}/hls/240p/seg_000.ts")
    frames, sizes, _ = decode_rung(blob, tmp_path / "240p.ts")
    assert abs(frames - 3 * FPS) <= 2 and sizes == {(320, 240)}

    again = (await HlsProcessor().run(ctx)).renditions  # same keys, nothing added
    assert [r.storage_key for r in again] == [r.storage_key for r in out]
    assert await keys_under(ctx, f"{folder}/hls/") == expected


async def test_a_rerun_keeps_the_subtitles_another_step_added(make_ctx, sources):
    """transcribe adds a SUBTITLES group to the master; running hls again must not drop it or its files."""
    ctx = await make_ctx(sources["240p"])
    folder = ctx.asset["storage_key"].rsplit("/", 1)[0]
    out = (await HlsProcessor().run(ctx)).renditions
    media = '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",URI="subtitles/en.m3u8"'
    master = (await text(ctx, out[0].storage_key)).replace("#EXT-X-STREAM-INF:", media + "\n#EXT-X-STREAM-INF:")
    master = master.replace("\n240p/index.m3u8", ',SUBTITLES="subs"\n240p/index.m3u8')
    await ctx.storage.put(out[0].storage_key, master.encode())
    for name in ("en.m3u8", "en.vtt"):
        await ctx.storage.put(f"{folder}/hls/subtitles/{name}", b"WEBVTT")

    again = (await HlsProcessor().run(ctx)).renditions
    rewritten = await text(ctx, again[0].storage_key)
    assert media in rewritten and rewritten.index(media) < rewritten.index("#EXT-X-STREAM-INF")
    variants = parse_master_playlist(rewritten)
    assert [v.get("SUBTITLES") for v in variants] == ["subs"]
    assert {f"{folder}/hls/subtitles/en.m3u8", f"{folder}/hls/subtitles/en.vtt"} <= await keys_under(
        ctx, f"{folder}/hls/")


async def test_rotated_source_without_audio(make_ctx, sources, tmp_path):
    ctx = await make_ctx(sources["rotated"])  # 640x480 shown as 480x640 (portrait)
    master, *rungs = (await HlsProcessor().run(ctx)).renditions
    assert [(r.name, r.width, r.height) for r in rungs] == [("360p", 360, 480), ("480p", 480, 640)]
    variants = parse_master_playlist(await text(ctx, master.storage_key))
    assert [v["RESOLUTION"] for v in variants] == ["360x480", "480x640"]
    assert all("," not in v["CODECS"] and v["CODECS"].startswith("avc1.64") for v in variants)
    folder = ctx.asset["storage_key"].rsplit("/", 1)[0]
    blob = await ctx.storage.get_bytes(f"{folder}/hls/480p/seg_000.ts")
    frames, sizes, audio = decode_rung(blob, tmp_path / "r.ts")
    assert abs(frames - FPS) <= 2 and sizes == {(480, 640)} and audio == 0


async def test_bad_input_fails_permanently(make_ctx, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(PermanentProcessingError):
        await HlsProcessor().run(await make_ctx(empty))
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n")
    with pytest.raises(PermanentProcessingError):
        await HlsProcessor().run(await make_ctx(fake))


async def test_plugin_registers_hls(tmp_path):
    settings = load_settings(env={}, data_dir=str(tmp_path), secret_key="x")
    processor = PluginHost(settings).processors["hls"]
    assert processor.kinds == {"video"} and processor.timeout_seconds > 0


async def test_hls_step_runs_through_the_job_runner(make_settings, sources):
    import asyncio

    from mediasvc.app import create_app
    from mediasvc.auth import get_or_create_tenant
    from mediasvc.ingest.assets import create_uploaded_asset, reserve_key
    from mediasvc.tables import Asset, Event, ProcessingJob, Rendition
    from tests.conftest import serve_in_process

    settings = make_settings(**{
        "run_worker_in_app": True,
        "queue.name": f"hls-{uuid.uuid4().hex[:8]}",
        "profiles": {"clip": {"kind": "video", "formats": ["mp4"], "max_bytes": 50_000_000, "bucket": "clips",
                              "steps": ["probe", "hls"]}},
    })
    app = create_app(settings)
    async with serve_in_process(app):
        services = app.state.services
        data = sources["240p"].read_bytes()
        tenant = await get_or_create_tenant(f"hls-{uuid.uuid4().hex[:6]}")
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
        jobs = await ProcessingJob.select().where(ProcessingJob.asset == asset_id)
        assert {j["step"]: j["status"] for j in jobs} == {"probe": "succeeded", "hls": "succeeded"}
        assert {j["step"]: j["progress"] for j in jobs}["hls"] == 100
        renditions = await Rendition.select().where(Rendition.asset == asset_id)
        assert sorted((r["kind"], r["name"]) for r in renditions) == [("hls", "240p"), ("hls", "master")]
        events = await Event.raw("SELECT type, payload FROM events WHERE payload->>'asset_id' = {} "
                                 "ORDER BY created_at", str(asset_id))
        assert [e["type"] for e in events] == ["media.uploaded", "rendition.ready", "media.processed"]
        ready = json.loads(events[1]["payload"]) if isinstance(events[1]["payload"], str) else events[1]["payload"]
        assert (ready["rung"], ready["resolution"], ready["kind"]) == ("240p", "320x240", "hls")
        assert ready["playlist_key"] == next(r for r in renditions if r["name"] == "240p")["storage_key"]
        assert ready["bandwidth"] > 0
        for r in renditions:
            assert (await services.storage.head(r["storage_key"])).size == r["size_bytes"] > 0
