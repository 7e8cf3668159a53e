"""``audio``: 16 kHz mono 16-bit PCM WAV (``audio.wav``), for speech recognition and waveforms."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import av

from mediasvc_video.cost import duration as media_duration
from mediasvc_video.media import local_input, open_media, output_key, run_with_progress, temp_dir, upload
from mediasvc_video.probe import _duration
from mediasvc.plugin import PermanentProcessingError, ProcessorResult, RenditionOut

RATE = 16000


def extract_wav(path: Path, target: Path, report: Any) -> tuple[int, float] | None:
    """Write the first audio stream as 16 kHz mono s16 WAV. Returns (frames, seconds), None without audio."""
    with open_media(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        duration = _duration(container)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        written = 0
        with wave.open(str(target), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)

            def write(frames: list[Any]) -> None:
                nonlocal written
                for f in frames:
                    out.writeframes(bytes(f.planes[0])[: f.samples * 2])
                    written += f.samples

            for frame in container.decode(stream):
                write(resampler.resample(frame))
                if duration and frame.time is not None:
                    report(min(99.0, 100.0 * frame.time / duration))
            write(resampler.resample(None))
        if written == 0:
            raise PermanentProcessingError("no audio could be decoded")
        return written, written / RATE


class AudioProcessor:
    name = "audio"
    kinds = frozenset({"video", "audio"})
    timeout_seconds = 1800
    needs = frozenset({"probe"})

    def cost(self, asset: dict[str, Any]) -> float:
        return 1.0 + 0.05 * media_duration(asset)

    async def run(self, ctx: Any) -> ProcessorResult:
        with temp_dir(ctx) as tmp:
            target = tmp / "audio.wav"
            async with local_input(ctx) as path:
                result = await run_with_progress(ctx, lambda report: extract_wav(path, target, report))
            if result is None:
                if ctx.asset.get("kind") == "audio":
                    raise PermanentProcessingError("the file has no audio stream")
                await ctx.progress(100)
                return ProcessorResult()  # a silent video: nothing to extract
            _, seconds = result
            key = output_key(ctx, "audio.wav")
            info = await upload(ctx, key, target, "audio/wav")
        await ctx.progress(100)
        return ProcessorResult(renditions=[RenditionOut(
            kind="audio", name="default", storage_key=key, content_type="audio/wav", size_bytes=info.size,
            duration_seconds=round(seconds, 3), bitrate=RATE * 16,
            metadata={"sample_rate": RATE, "channels": 1, "sample_format": "s16"})])
