"""Pure helpers of the ``hls`` processor: the ladder plan, playlist reading/writing, RFC 6381 codec strings."""

from __future__ import annotations

from typing import Any

import re

import msgspec

# (name, short side, video bitrate)
LADDER: tuple[tuple[str, int, int], ...] = (
    ("360p", 360, 800_000),
    ("480p", 480, 1_400_000),
    ("720p", 720, 2_800_000),
    ("1080p", 1080, 5_000_000),
)


class Rung(msgspec.Struct, frozen=True):
    name: str
    width: int
    height: int
    bitrate: int


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def plan_ladder(width: int, height: int) -> list[Rung]:
    """The rungs for a (displayed) ``width`` x ``height`` source, smallest first: a rung whose short side is above
    the source's is dropped (no upscaling); when none is left, one rung at the source size with the lowest
    bitrate. Landscape rungs are ``W x 360``..., portrait ones ``360 x H``...; sizes are even."""
    short = min(width, height)
    rungs = []
    for name, side, bitrate in LADDER:
        if side > short:
            continue
        scale = side / short
        rungs.append(Rung(name, _even(width * scale), _even(height * scale), bitrate))
    if not rungs:
        w, h = max(2, width // 2 * 2), max(2, height // 2 * 2)  # even, rounded down: never above the source
        rungs.append(Rung(f"{min(w, h)}p", w, h, LADDER[0][2]))
    return rungs


def parse_media_playlist(text: str) -> list[tuple[float, str]]:
    """(duration, uri) of each segment of a media playlist."""
    segments: list[tuple[float, str]] = []
    duration: float | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:"):].split(",", 1)[0])
        elif line and not line.startswith("#"):
            if duration is None:
                raise ValueError(f"segment {line!r} has no #EXTINF")
            segments.append((duration, line))
            duration = None
    return segments


def parse_attributes(value: str) -> dict[str, str]:
    """``A=1,B="x,y"`` → {"A": "1", "B": "x,y"}."""
    out: dict[str, str] = {}
    i = 0
    while i < len(value):
        eq = value.index("=", i)
        key = value[i:eq].strip()
        j = eq + 1
        if j < len(value) and value[j] == '"':
            end = value.index('"', j + 1)
            out[key] = value[j + 1:end]
            i = end + 1
        else:
            end = value.find(",", j)
            end = len(value) if end < 0 else end
            out[key] = value[j:end]
            i = end
        if i < len(value) and value[i] == ",":
            i += 1
    return out


def parse_master_playlist(text: str) -> list[dict[str, str]]:
    """Each variant's attributes plus its ``URI``."""
    variants: list[dict[str, str]] = []
    pending: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = parse_attributes(line[len("#EXT-X-STREAM-INF:"):])
        elif line and not line.startswith("#") and pending is not None:
            variants.append({**pending, "URI": line})
            pending = None
    return variants


def sps_profile_level(data: bytes) -> tuple[int, int, int] | None:
    """(profile_idc, constraint flags, level_idc) of the first H.264 SPS found in Annex B bytes (a TS segment:
    the SPS is small and sits whole in the first PES payload)."""
    start = 0
    while True:
        i = data.find(b"\x00\x00\x01", start)
        if i < 0 or i + 6 > len(data):
            return None
        if data[i + 3] & 0x1F == 7:
            return data[i + 4], data[i + 5], data[i + 6]
        start = i + 3


def codecs_string(profile_level: tuple[int, int, int] | None, has_audio: bool) -> str:
    """``avc1.PPCCLL`` (RFC 6381) from the SPS, plus ``mp4a.40.2`` (AAC-LC) when there is audio."""
    profile, flags, level = profile_level or (0x64, 0x00, 0x28)  # High 4.0 when no SPS could be read
    video = f"avc1.{profile:02x}{flags:02x}{level:02x}"
    return f"{video},mp4a.40.2" if has_audio else video


def master_playlist(variants: list[dict[str, Any]]) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in variants:
        attrs = [f"BANDWIDTH={v['bandwidth']}", f"AVERAGE-BANDWIDTH={v['average_bandwidth']}",
                 f"RESOLUTION={v['width']}x{v['height']}", f'CODECS="{v["codecs"]}"']
        if v.get("frame_rate"):
            attrs.append(f"FRAME-RATE={v['frame_rate']:.3f}")
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(v["uri"])
    return "\n".join(lines) + "\n"



_GROUP = re.compile(r'GROUP-ID="([^"]*)"')
_URI = re.compile(r'URI="([^"]*)"')


def carry_subtitles(previous_master: str | None, master: str) -> tuple[str, list[str]]:
    """``master`` with the SUBTITLES renditions of the asset's previous master (another step, such as
    ``transcribe``, added them), every variant pointing at their group; and the URIs they use, whose files must
    survive the re-run. Unchanged when the previous master had none."""
    media = [line for line in (previous_master or "").splitlines()
             if line.startswith("#EXT-X-MEDIA:") and "TYPE=SUBTITLES" in line]
    if not media:
        return master, []
    group = _GROUP.search(media[0])
    lines = master.splitlines()
    first_variant = next(i for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF:"))
    lines[first_variant:first_variant] = media
    if group:
        lines = [f'{line},SUBTITLES="{group.group(1)}"' if line.startswith("#EXT-X-STREAM-INF:") else line
                 for line in lines]
    return "\n".join(lines) + "\n", [m.group(1) for line in media if (m := _URI.search(line))]
