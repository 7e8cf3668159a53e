"""The ``MediaProber`` of this plugin (``register_media_probers``): durations and summaries of local files."""

from __future__ import annotations

from pathlib import Path

from mediasvc_video.probe_local import probe_duration
from mediasvc_video.validate_content import DEMUXERS, describe_file
from mediasvc.plugin import MediaInfo


class PyAvProber:
    name = "pyav"
    content_types = frozenset(DEMUXERS)

    def duration(self, path: Path) -> float | None:
        return probe_duration(path)

    def describe(self, path: Path, content_type: str) -> MediaInfo:
        return describe_file(path, content_type)
