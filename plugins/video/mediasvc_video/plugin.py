"""The ``video`` plugin: audio/video processors on PyAV (probe, thumbnail, audio, mp4)."""

from __future__ import annotations

from typing import Any

from mediasvc_video.audio import AudioProcessor
from mediasvc_video.hls import HlsProcessor
from mediasvc_video.mp4 import Mp4Processor
from mediasvc_video.probe import ProbeProcessor
from mediasvc_video.thumbnail import ThumbnailProcessor
from mediasvc.hookspecs import hookimpl


@hookimpl
def register_processors(settings: Any) -> list[Any]:
    return [ProbeProcessor(), ThumbnailProcessor(), AudioProcessor(), Mp4Processor(), HlsProcessor()]
