"""The ``video`` plugin: audio/video processors on PyAV (probe, thumbnail, audio, mp4, hls), the media prober
(chunk durations, validation summaries) and the recording-session chunk joiner."""

from __future__ import annotations

from typing import Any

from mediasvc_video.audio import AudioProcessor
from mediasvc_video.cost import ladder_cost
from mediasvc_video.hls import RENDITION_READY, HlsProcessor
from mediasvc_video.join import PyAvJoiner
from mediasvc_video.limits import SECTION, VideoLimits
from mediasvc_video.mp4 import Mp4Processor
from mediasvc_video.probe import ProbeProcessor
from mediasvc_video.prober import PyAvProber
from mediasvc_video.thumbnail import ThumbnailProcessor
from mediasvc.plugin import hookimpl


@hookimpl
def register_settings() -> list[tuple[str, type]]:
    return [(SECTION, VideoLimits)]


@hookimpl
def register_processors(settings: Any) -> list[Any]:
    hls = HlsProcessor()
    # step graph and progress weight of the ladder (issue 16); hls.py is being reworked, so they are set here
    # until they can move into the class beside the others'
    if getattr(hls, "needs", None) is None:
        hls.needs = frozenset({"probe"})
    if getattr(hls, "cost", None) is None:
        hls.cost = ladder_cost
    return [ProbeProcessor(), ThumbnailProcessor(), AudioProcessor(), Mp4Processor(), hls]


@hookimpl
def register_media_probers(settings: Any) -> list[Any]:
    return [PyAvProber()]


@hookimpl
def register_chunk_joiners(settings: Any) -> list[Any]:
    return [PyAvJoiner()]


@hookimpl
def register_event_types() -> list[str]:
    return [RENDITION_READY]
