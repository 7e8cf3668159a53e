"""Captions from transcript segments: WebVTT and SubRip (SRT), and a small WebVTT cue parser."""

from __future__ import annotations

import re
from collections.abc import Sequence

from mediasvc.plugin import TranscriptSegment

_CUE_TIME = re.compile(r"^(\d+:)?(\d{2}):(\d{2})\.(\d{3}) --> (\d+:)?(\d{2}):(\d{2})\.(\d{3})")


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(text: str) -> str:
    """Cue payloads may not contain '-->' or blank lines; '&' and '<' are escaped for WebVTT."""
    text = " ".join(text.replace("-->", "->").split())
    return text


def _cues(segments: Sequence[TranscriptSegment]) -> list[tuple[float, float, str]]:
    cues = []
    for segment in segments:
        text = _cue_text(segment.text)
        if text:
            cues.append((segment.start, max(segment.end, segment.start + 0.001), text))
    return cues


def to_webvtt(segments: Sequence[TranscriptSegment], *, header: str = "") -> str:
    lines = ["WEBVTT"]
    if header:
        lines.append(header)
    lines.append("")
    for index, (start, end, text) in enumerate(_cues(segments), 1):
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        lines += [str(index), f"{_clock(start, '.')} --> {_clock(end, '.')}", escaped, ""]
    return "\n".join(lines) + "\n"


def to_srt(segments: Sequence[TranscriptSegment]) -> str:
    blocks = [f"{index}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{text}\n"
              for index, (start, end, text) in enumerate(_cues(segments), 1)]
    return "\n".join(blocks)


def _seconds(hours: str | None, minutes: str, seconds: str, millis: str) -> float:
    return int((hours or "0:")[:-1]) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def parse_webvtt(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of every cue; raises ValueError when the file is not WebVTT."""
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or not lines[0].startswith("WEBVTT"):
        raise ValueError("not a WebVTT file: the first line must start with WEBVTT")
    cues, index = [], 1
    while index < len(lines):
        match = _CUE_TIME.match(lines[index])
        if not match:
            index += 1
            continue
        start = _seconds(*match.group(1, 2, 3, 4))
        end = _seconds(*match.group(5, 6, 7, 8))
        payload = []
        index += 1
        while index < len(lines) and lines[index].strip():
            payload.append(lines[index])
            index += 1
        cues.append((start, end, "\n".join(payload)))
    return cues
