"""``thumbnail``: the frame at 1 s (10% into clips under 10 s) as a 320-px-wide JPEG, and a poster at most
1280 px wide."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from mediasvc_video.media import local_input, open_media, output_key, run_with_progress, temp_dir, upload
from mediasvc_video.probe import _duration, _normal_rotation
from mediasvc.plugin import PermanentProcessingError, ProcessorResult, RenditionOut

THUMB_WIDTH = 320
POSTER_MAX_WIDTH = 1280
JPEG_QUALITY = 85


def frame_time(duration: float | None) -> float:
    if not duration or duration <= 0:
        return 0.0
    return 1.0 if duration >= 10 else duration * 0.1


def _grab(path: Path, report: Any) -> Image.Image:
    """The displayed (rotated) picture at ``frame_time`` (the last decodable frame if none is later)."""
    with open_media(path) as container:
        if not container.streams.video:
            raise PermanentProcessingError("the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        offset = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        target = offset + frame_time(_duration(container))
        if target > 0 and stream.time_base:
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
        picked = None
        for frame in container.decode(stream):
            picked = frame
            if frame.time is None or frame.time >= target - 1e-3:
                break
        if picked is None and target > 0:  # seek went past the content: take the first frame
            container.seek(0)
            picked = next(iter(container.decode(stream)), None)
        if picked is None:
            raise PermanentProcessingError("no video frame could be decoded")
        report(60)
        image = picked.to_image()  # RGB
        rotation = _normal_rotation(picked.rotation or 0)
        if rotation:
            # PIL rotates counter-clockwise for positive angles, as the display matrix does
            image = image.rotate(rotation, expand=True)
        return image


def _resized(image: Image.Image, width: int) -> Image.Image:
    height = max(1, round(image.height * width / image.width))
    return image if (width, height) == image.size else image.resize((width, height), Image.Resampling.LANCZOS)


class ThumbnailProcessor:
    name = "thumbnail"
    kinds = frozenset({"video"})
    timeout_seconds = 300
    needs = frozenset({"probe"})

    async def run(self, ctx: Any) -> ProcessorResult:
        with temp_dir(ctx) as tmp:
            async with local_input(ctx) as path:
                def work(report: Any) -> list[tuple[str, str, Path, int, int]]:
                    image = _grab(path, report)
                    out = []
                    for kind, name, width in (("thumbnail", "thumb.jpg", THUMB_WIDTH),
                                              ("poster", "poster.jpg", min(image.width, POSTER_MAX_WIDTH))):
                        resized = _resized(image, width)
                        target = tmp / name
                        resized.save(target, "JPEG", quality=JPEG_QUALITY, optimize=True)
                        out.append((kind, name, target, resized.width, resized.height))
                    report(90)
                    return out

                made = await run_with_progress(ctx, work)
            renditions = []
            for kind, name, file, width, height in made:
                key = output_key(ctx, name)
                info = await upload(ctx, key, file, "image/jpeg")
                renditions.append(RenditionOut(kind=kind, name="default", storage_key=key,
                                               content_type="image/jpeg", size_bytes=info.size, width=width,
                                               height=height))
        await ctx.progress(100)
        return ProcessorResult(renditions=renditions)
