"""HLS benchmark: a 30 s 1080p source → the 4-rung ladder (360p/480p/720p/1080p, H.264 + AAC 128k, ~4 s
segments), through our ``hls`` processor's transcoder against the ffmpeg CLI producing the same ladder in one
process.

* **ours**: ``mediasvc_video.hls.transcode_ladder``, the processor's decode-once loop on PyAV, each rung on a
  thread of its own (what ``HlsProcessor.run`` calls before it uploads). ``--early``: two passes, the lowest rung
  alone and then the rest, as the processor runs by default so the first rung is playable early.
* **ffmpeg CLI**: one ``ffmpeg`` process, one decode, ``split`` into four ``scale`` filters (bilinear, as PyAV's
  ``reformat``), four libx264 encoders with the same preset, profile, bitrate/maxrate/bufsize, GOP and keyframe
  placement (forced every 4 s, no scene cuts), four AAC 128k encoders, the ``hls`` muxer with the same options.

Both use the codecs' default (automatic) thread counts. The two sides run alternately (the first side swaps every
round) so load from other work on the machine hits both alike; the figures are medians. The source is generated
here with PyAV (a smooth textured picture with light grain, panning, and a moving block; 30 fps; a stereo 48 kHz
tone), so nothing is downloaded.

The CLI side needs an ``ffmpeg`` binary on PATH (Debian: ``apt-get install -y ffmpeg``); without it only our side
is measured. Note the CLI links the system's FFmpeg/x264, ours the ones bundled in the PyAV wheel.

    uv run --locked python bench/hls.py [--seconds 30] [--rounds 3] [--preset veryfast] [--early]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from mediasvc_video.hls import AUDIO_BITRATE, DEFAULT_PRESET, SEGMENT_SECONDS, transcode_ladder
from mediasvc_video.hls_ladder import parse_media_playlist, plan_ladder
from PIL import Image

FPS = 30
WIDTH, HEIGHT = 1920, 1080
SAMPLE_RATE = 48_000


def make_source(path: Path, seconds: float) -> None:
    """1080p30 H.264 (CRF 20) + stereo AAC: a textured picture panning sideways with a block moving across it, so
    motion estimation and the rate control have real work to do."""
    rng = np.random.default_rng(7)
    pad = 4 * int(seconds * FPS)
    coarse = rng.integers(0, 256, (HEIGHT // 16, (WIDTH + pad) // 16, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((WIDTH + pad, HEIGHT), Image.Resampling.BILINEAR))
    grain = rng.integers(0, 12, smooth.shape, dtype=np.uint8)  # a little sensor-like noise
    texture = (smooth.astype(np.uint16) * 7 // 8 + grain).astype(np.uint8)
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=FPS, options={"preset": "superfast", "crf": "20"})
        v.width, v.height, v.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        a = out.add_stream("aac", rate=SAMPLE_RATE)
        a.layout = "stereo"
        frames = int(seconds * FPS)
        for i in range(frames):
            picture = texture[:, 4 * i:4 * i + WIDTH].copy()
            x = (i * 12) % (WIDTH - 200)
            picture[400:600, x:x + 200] = (255, 200, 40)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        samples, chunk = int(seconds * SAMPLE_RATE), 1024
        t = np.arange(samples) / SAMPLE_RATE
        tone = (0.2 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
        for start in range(0, samples, chunk):
            block = tone[start:start + chunk]
            frame = av.AudioFrame.from_ndarray(np.stack([block, block]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
            out.mux(a.encode(frame))
        out.mux(a.encode(None))


def run_ours(source: Path, out_dir: Path, preset: str, early: bool = False) -> dict[str, object]:
    """One pass (every rung from one decode), or with ``early`` the processor's default: the lowest rung alone,
    then the rest (a second decode), printing when the first rung was done."""
    if not early:
        return transcode_ladder(source, out_dir, preset, lambda percent: None)
    started = time.perf_counter()
    transcode_ladder(source, out_dir, preset, lambda percent: None, part="first")
    print(f"  first rung done after {time.perf_counter() - started:.2f} s", flush=True)
    return transcode_ladder(source, out_dir, preset, lambda percent: None, part="rest")


def cli_command(source: Path, out_dir: Path, preset: str) -> list[str]:
    """The same ladder in one ffmpeg process."""
    rungs = plan_ladder(WIDTH, HEIGHT)
    gop = math.ceil(FPS * SEGMENT_SECONDS)
    split = f"[0:v]split={len(rungs)}" + "".join(f"[s{i}]" for i in range(len(rungs)))
    scales = [f"[s{i}]scale={r.width}:{r.height}:flags=bilinear,format=yuv420p[v{i}]" for i, r in enumerate(rungs)]
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
           "-filter_complex", ";".join([split, *scales])]
    for i in range(len(rungs)):
        cmd += ["-map", f"[v{i}]", "-map", "0:a:0"]
    cmd += ["-c:v", "libx264", "-preset", preset, "-profile:v", "high", "-g", str(gop), "-keyint_min", str(gop),
            "-sc_threshold", "0", "-x264-params", "scenecut=0:open-gop=0",
            "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})",
            "-c:a", "aac", "-b:a", str(AUDIO_BITRATE), "-ac", "2"]
    for i, r in enumerate(rungs):
        cmd += [f"-b:v:{i}", str(r.bitrate), f"-maxrate:v:{i}", str(int(r.bitrate * 1.07)),
                f"-bufsize:v:{i}", str(int(r.bitrate * 1.5))]
    cmd += ["-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod", "-hls_list_size", "0",
            "-hls_segment_type", "mpegts", "-hls_flags", "independent_segments",
            "-var_stream_map", " ".join(f"v:{i},a:{i},name:{r.name}" for i, r in enumerate(rungs)),
            "-hls_segment_filename", str(out_dir / "%v" / "seg_%03d.ts"), str(out_dir / "%v" / "index.m3u8")]
    return cmd


def run_cli(source: Path, out_dir: Path, preset: str) -> None:
    subprocess.run(cli_command(source, out_dir, preset), check=True)


def cpu_seconds() -> float:
    """User + system CPU of this process (every thread) and of its finished children (the ffmpeg CLI)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def summarize(out_dir: Path) -> str:
    """Segments and kbit/s per rung, to show both sides made the same ladder."""
    parts = []
    for r in plan_ladder(WIDTH, HEIGHT):
        segments = parse_media_playlist((out_dir / r.name / "index.m3u8").read_text())
        size = sum((out_dir / r.name / uri).stat().st_size for _, uri in segments)
        seconds = sum(d for d, _ in segments)
        parts.append(f"{r.name} {len(segments)} seg {size * 8 / seconds / 1000:.0f} kb/s")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--early", action="store_true",
                        help="ours as the hls processor runs it by default: lowest rung first, then the rest")
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    with tempfile.TemporaryDirectory(prefix="bench-hls-") as tmp:
        source = Path(tmp) / "source.mp4"
        t = time.perf_counter()
        make_source(source, args.seconds)
        print(f"source: {args.seconds:.0f} s {WIDTH}x{HEIGHT}@{FPS} H.264 + AAC stereo, "
              f"{source.stat().st_size / 1e6:.1f} MB (made in {time.perf_counter() - t:.0f} s)", flush=True)
        sides = {"ours (PyAV)": lambda out: run_ours(source, out, args.preset, args.early)}
        if ffmpeg:
            sides["ffmpeg CLI"] = lambda out: run_cli(source, out, args.preset)
        else:
            print("ffmpeg CLI: not measured (no ffmpeg on PATH; Debian: apt-get install -y ffmpeg)")
        times: dict[str, list[float]] = {name: [] for name in sides}
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        ladders: dict[str, str] = {}
        load_before = os.getloadavg()[0]
        for round_no in range(args.rounds):
            order = list(sides) if round_no % 2 == 0 else list(reversed(sides))
            for name in order:
                out = Path(tmp) / "out"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                started, cpu_started = time.perf_counter(), cpu_seconds()
                sides[name](out)
                times[name].append(time.perf_counter() - started)
                cpu[name].append(cpu_seconds() - cpu_started)
                ladders[name] = summarize(out)
                print(f"round {round_no + 1} {name}: {times[name][-1]:.2f} s wall, {cpu[name][-1]:.1f} s CPU",
                      flush=True)
        load_after = os.getloadavg()[0]

    print(f"\n# hls benchmark, {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}, PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}), preset "
          f"{args.preset}, {args.rounds} alternating rounds, load average {load_before:.1f} → {load_after:.1f}")
    if ffmpeg:
        version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=False).stdout
        print(f"CLI: {version.splitlines()[0]}")
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    cpu_medians = {name: statistics.median(ts) for name, ts in cpu.items()}
    for name, median in medians.items():
        print(f"{name:<12} median {median:6.2f} s wall ({', '.join(f'{x:.2f}' for x in times[name])}), "
              f"{cpu_medians[name]:.1f} s CPU, {args.seconds / median:.2f}x realtime  | {ladders[name]}")
    if "ffmpeg CLI" in medians:
        ours, cli = "ours (PyAV)", "ffmpeg CLI"
        ratios = [o / c for o, c in zip(times[ours], times[cli], strict=True)]
        print(f"ours / CLI wall time: {medians[ours] / medians[cli]:.3f}x (median of medians); per round "
              f"{', '.join(f'{r:.3f}' for r in ratios)}; target <= 1.0x")
        print(f"ours / CLI CPU time: {cpu_medians[ours] / cpu_medians[cli]:.3f}x (less sensitive to other load)")


if __name__ == "__main__":
    main()
