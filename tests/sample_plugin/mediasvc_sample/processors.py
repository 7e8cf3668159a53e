"""The sample's processors: the original's checksum (metadata only) and a waveform picture (a rendition)."""

from __future__ import annotations

import array
import asyncio
import hashlib
import io
import tempfile
from pathlib import Path

import av
from PIL import Image, ImageDraw

from mediasvc.plugin import (
    PermanentProcessingError,
    ProcessorContext,
    ProcessorResult,
    RenditionOut,
    local_file,
)

WIDTH, HEIGHT = 800, 120
RATE = 8000  # samples per second the peaks are measured at
# demuxers we open: never a playlist or a network protocol, whatever the file claims to be
FORMATS = {"wav", "mp3", "flac", "ogg", "matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2"}


class ChecksumProcessor:
    """Records the original's sha256 and size in the asset's metadata."""

    name = "sample_checksum"
    kinds = frozenset({"video", "audio", "image", "document"})
    timeout_seconds = 60

    async def run(self, ctx: ProcessorContext) -> ProcessorResult:
        digest, size = hashlib.sha256(), 0
        async for chunk in ctx.storage.get_stream(ctx.asset["storage_key"]):
            digest.update(chunk)
            size += len(chunk)
        await ctx.progress(100)
        return ProcessorResult(metadata={"sample_checksum": {"sha256": digest.hexdigest(), "bytes": size}})


class WaveformProcessor:
    """Draws the peaks of the audio as a PNG stored beside the original (``waveform.png``)."""

    name = "sample_waveform"
    kinds = frozenset({"audio", "video"})
    timeout_seconds = 300

    async def run(self, ctx: ProcessorContext) -> ProcessorResult:
        with tempfile.TemporaryDirectory() as tmp:
            path = await local_file(ctx.storage, ctx.asset["storage_key"], Path(tmp), "original")
            peaks, seconds = await asyncio.to_thread(read_peaks, path)
        await ctx.progress(80)
        png = await asyncio.to_thread(draw, peaks)
        key = ctx.asset["storage_key"].rsplit("/", 1)[0] + "/waveform.png"
        await ctx.storage.put(key, png, content_type="image/png")
        await ctx.progress(100)
        picture = RenditionOut(kind="waveform", name="default", storage_key=key, content_type="image/png",
                               size_bytes=len(png), width=WIDTH, height=HEIGHT, duration_seconds=seconds)
        return ProcessorResult(
            renditions=[picture],
            metadata={"sample_waveform": {"seconds": round(seconds, 3), "peak": round(max(peaks), 4)}},
        )


def read_peaks(path: Path) -> tuple[list[float], float]:
    """The loudest sample (0..1) in each of WIDTH slices of the audio, and its length in seconds."""
    try:
        with av.open(str(path), options={"protocol_whitelist": "file"}) as container:
            if container.format.name not in FORMATS or not container.streams.audio:
                raise PermanentProcessingError(f"no audio to draw ({container.format.name})")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            blocks: list[int] = []  # the peak of every 64 samples
            total = 0
            for frame in [*container.decode(audio=0), None]:  # None flushes the resampler
                for mono in resampler.resample(frame):
                    samples = array.array("h", bytes(mono.planes[0])[: mono.samples * 2])
                    blocks += [max(map(abs, samples[i:i + 64])) for i in range(0, len(samples), 64)]
                    total += mono.samples
    except av.FFmpegError as exc:
        raise PermanentProcessingError(f"cannot decode the audio: {exc}") from exc
    if not blocks:
        raise PermanentProcessingError("the audio has no samples")
    step = len(blocks) / WIDTH
    peaks = [max(blocks[int(i * step):max(int((i + 1) * step), int(i * step) + 1)], default=0) / 32768
             for i in range(WIDTH)]
    return peaks, total / RATE


def draw(peaks: list[float]) -> bytes:
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    pen = ImageDraw.Draw(image)
    middle = HEIGHT / 2
    for x, peak in enumerate(peaks):
        pen.line([(x, middle - peak * middle), (x, middle + peak * middle)], fill=(40, 90, 160))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
