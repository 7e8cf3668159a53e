"""Captions in the asset's HLS master playlist: a WebVTT SUBTITLES rendition every player can show.

Beside ``hls/master.m3u8`` go ``hls/subtitles/{lang}.vtt`` (the cues, with an ``X-TIMESTAMP-MAP`` tying them to the
MPEG-TS clock of the segments) and ``hls/subtitles/{lang}.m3u8`` (a one-segment VOD media playlist). The master gets
one ``#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs"`` line and ``SUBTITLES="subs"`` on every ``#EXT-X-STREAM-INF``;
any earlier subtitles lines of ours are removed first, so a re-run changes nothing twice. URIs are relative.
"""

from __future__ import annotations

import math
import re

GROUP = "subs"
FOLDER = "subtitles"
TS_PACKET = 188
DEFAULT_MPEGTS = 126000  # FFmpeg's mpegts muxer starts at 1.4 s of the 90 kHz clock

_OUR_MEDIA = re.compile(r'^#EXT-X-MEDIA:.*TYPE=SUBTITLES.*GROUP-ID="' + GROUP + '"')
_SUBTITLES_ATTR = re.compile(r',?SUBTITLES="[^"]*"')

LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "fr": "Français", "es": "Español", "it": "Italiano",
                  "nl": "Nederlands", "pt": "Português", "pl": "Polski", "ru": "Русский", "ja": "日本語",
                  "zh": "中文"}


def subtitles_media_line(language: str, uri: str) -> str:
    name = LANGUAGE_NAMES.get(language, language or "Captions")
    lang = f'LANGUAGE="{language}",' if language else ""
    return (f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{GROUP}",NAME="{name}",{lang}DEFAULT=YES,AUTOSELECT=YES,'
            f'FORCED=NO,URI="{uri}"')


def with_subtitles(master: str, language: str, uri: str) -> str:
    """``master`` with our subtitles rendition (replacing any earlier one) referenced by every variant."""
    lines = [line for line in master.splitlines() if not _OUR_MEDIA.match(line)]
    out: list[str] = []
    inserted = False
    for line in lines:
        if line.startswith("#EXT-X-STREAM-INF:"):
            if not inserted:
                out.append(subtitles_media_line(language, uri))
                inserted = True
            line = _SUBTITLES_ATTR.sub("", line).rstrip(",") + f',SUBTITLES="{GROUP}"'
        out.append(line)
    if not inserted:
        raise ValueError("the master playlist has no #EXT-X-STREAM-INF variant")
    return "\n".join(out) + "\n"


def media_playlist(vtt_uri: str, duration: float) -> str:
    seconds = max(duration, 0.001)
    return "\n".join([
        "#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{max(1, math.ceil(seconds))}",
        "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD", f"#EXTINF:{seconds:.3f},", vtt_uri,
        "#EXT-X-ENDLIST",
    ]) + "\n"


def timestamp_map(mpegts: int) -> str:
    return f"X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000"


def first_pts(ts: bytes) -> int | None:
    """The first presentation timestamp (90 kHz) in an MPEG-TS segment, read from its PES headers."""
    for offset in range(0, len(ts) - TS_PACKET + 1, TS_PACKET):
        packet = ts[offset:offset + TS_PACKET]
        if packet[0] != 0x47 or not packet[1] & 0x40:  # sync byte; payload unit start
            continue
        control = (packet[3] >> 4) & 0x3
        start = 4
        if control in (2, 3):
            start += 1 + packet[4]
        if control == 2 or start + 14 > TS_PACKET:
            continue
        pes = packet[start:]
        if pes[:3] != b"\x00\x00\x01" or not (0xC0 <= pes[3] <= 0xEF):
            continue
        if not pes[7] & 0x80:  # no PTS
            continue
        p = pes[9:14]
        return (((p[0] >> 1) & 0x07) << 30) | (p[1] << 22) | ((p[2] >> 1) << 15) | (p[3] << 7) | (p[4] >> 1)
    return None


def first_segment_uri(playlist: str) -> str | None:
    return next((line.strip() for line in playlist.splitlines() if line.strip() and not line.startswith("#")),
                None)
