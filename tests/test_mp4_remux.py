"""Remux when compliant (issue 16, item 1): an upload browsers already play becomes the ``mp4`` rendition by a
stream copy with the index first, not a re-encode; anything else is still encoded, and the rendition says which."""

from __future__ import annotations

import io
import math
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from mediasvc_video.mp4 import Mp4Processor
from PIL import Image

from mediasvc.settings import load_settings
from mediasvc.testing import make_context
from tests.test_processors_video import make_video, make_webm, read_local, top_level_boxes


def encode(path: Path, *, seconds: float, width: int, height: int, fps: int, pix_fmt: str = "yuv420p",
           options: dict[str, str] | None = None, audio: bool = True, noise: bool = True) -> Path:
    """H.264 (libx264 with ``options``) + AAC stereo, moov at the end as a camera writes it; a turning noise
    picture, or (``noise=False``) a flat colour that changes with time, which encodes fast and small."""
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", **(options or {})})
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        a = None
        if audio:
            a = out.add_stream("aac", rate=48000)
            a.layout = "stereo"
        base = Image.effect_noise((width, height), 40).convert("RGB")
        for i in range(int(seconds * fps)):
            picture = base.rotate(i * 3) if noise else Image.new("RGB", (width, height), (i % 256, 90, 160))
            frame = av.VideoFrame.from_image(picture)
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        if a is not None:
            for start in range(0, int(seconds * 48000), 1024):
                frame = av.AudioFrame(format="s16", layout="stereo", samples=1024)
                pcm = b"".join(struct.pack("<hh", s, s) for s in (
                    int(6000 * math.sin(2 * math.pi * 330 * (start + k) / 48000)) for k in range(1024)))
                frame.planes[0].update(pcm)
                frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
                out.mux(a.encode(frame))
            out.mux(a.encode(None))
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("remux")
    return {
        # High profile with B-frames, keyframes every 2 s: what a phone or an editor exports
        "compliant": encode(d / "hd.mp4", seconds=2.0, width=1280, height=720, fps=25,
                            options={"profile": "high", "bf": "3", "g": "50"}),
        "rotated": make_video(d / "rotated.mp4", seconds=1.0, rotation=90, audio=True),
        "webm": make_webm(d / "recording.webm"),
        "yuv444": encode(d / "444.mp4", seconds=1.0, width=320, height=240, fps=25, pix_fmt="yuv444p"),
        "long_gop": encode(d / "gop.mp4", seconds=12.0, width=64, height=64, fps=5, audio=False,
                           options={"g": "1000", "keyint_min": "1000", "sc_threshold": "0"}),
    }


async def run_mp4(tmp_path: Path, source: Path) -> tuple[Any, Any, bytes]:
    settings = load_settings(env={}, data_dir=str(tmp_path / "data"), secret_key="x")
    ctx = await make_context(source, kind="video", settings=settings, extension=source.suffix.lstrip("."))
    [out] = (await Mp4Processor().run(ctx)).renditions
    return ctx, out, read_local(ctx, out.storage_key)


def video_facts(source: Path | bytes) -> dict[str, Any]:
    with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as c:
        v = c.streams.video[0]
        cc = v.codec_context
        packets = [(p.pts, p.dts, p.size, p.is_keyframe) for p in c.demux(v) if p.size]
        audio = [(p.pts, p.size) for p in c.demux(audio=0) if p.size] if c.streams.audio else []
        c.seek(0)
        rotation = next(iter(c.decode(v))).rotation
        return {"codec": cc.name, "profile": cc.profile, "level": cc.level, "size": (cc.width, cc.height),
                "pix_fmt": cc.format.name, "extradata": bytes(cc.extradata or b""), "packets": packets,
                "audio": audio, "rotation": rotation}


async def test_a_compliant_720p_h264_aac_upload_is_copied_with_the_index_first(tmp_path, sources):
    _ctx, out, data = await run_mp4(tmp_path, sources["compliant"])
    before, after = video_facts(sources["compliant"]), video_facts(data)
    assert before["profile"] == "High" and any(p[0] != p[1] for p in before["packets"])  # B-frames: pts != dts
    for key in ("codec", "profile", "level", "size", "pix_fmt", "extradata"):
        assert after[key] == before[key], key
    # the very same packets: nothing was decoded or encoded
    assert [(p[0], p[2], p[3]) for p in after["packets"]] == [(p[0], p[2], p[3]) for p in before["packets"]]
    assert [p[1] for p in after["audio"]] == [p[1] for p in before["audio"]]
    boxes = top_level_boxes(data)
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # faststart
    assert top_level_boxes(sources["compliant"].read_bytes()).index("moov") > 0
    assert out.metadata["method"] == "copy" and "reason" not in out.metadata
    assert (out.width, out.height) == (1280, 720) and abs(out.duration_seconds - 2.0) < 0.1


async def test_the_display_rotation_survives_the_copy(tmp_path, sources):
    _ctx, out, data = await run_mp4(tmp_path, sources["rotated"])
    assert out.metadata["method"] == "copy"
    facts = video_facts(data)
    assert facts["rotation"] == video_facts(sources["rotated"])["rotation"] == 90
    assert facts["size"] == (320, 240) and (out.width, out.height) == (240, 320)  # stored sideways, shown upright


@pytest.mark.parametrize(("case", "reason"), [
    ("webm", "codec vp9"),
    ("yuv444", "h264 profile High 4:4:4 Predictive"),
    ("long_gop", "keyframes 12 s apart"),
])
async def test_anything_else_is_still_encoded_and_says_why(tmp_path, sources, case, reason):
    ctx, out, data = await run_mp4(tmp_path, sources[case])
    assert out.metadata["method"] == "encode" and out.metadata["reason"] == reason
    after = video_facts(data)
    assert (after["codec"], after["pix_fmt"]) == ("h264", "yuv420p")
    if case == "yuv444":  # a sine (the webm's audio is silence, which AAC squeezes to nothing)
        with av.open(io.BytesIO(data)) as c:  # the encoder's 128k AAC, not the source's audio
            assert c.streams.audio[0].codec_context.bit_rate in range(96_000, 160_001)
    assert ctx.progress_seen[-1] == 100
