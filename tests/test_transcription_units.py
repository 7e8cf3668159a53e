"""The transcription plugin's pure parts: captions, HLS subtitles, silence, PTS and session stitching."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import pytest
from mediasvc_transcription.captions import parse_webvtt, to_srt, to_webvtt
from mediasvc_transcription.engines import pick_engine
from mediasvc_transcription.hls_subtitles import first_pts, media_playlist, with_subtitles
from mediasvc_transcription.silence import is_silent
from mediasvc_transcription.stitch import ChunkText, chunk_offsets, stitch
from mediasvc_transcription.wer import words

from mediasvc.contracts import Transcription, TranscriptSegment
from mediasvc.processing import PermanentProcessingError

MASTER = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2"
360p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1500000,AVERAGE-BANDWIDTH=1400000,RESOLUTION=854x480,CODECS="avc1.64001e,mp4a.40.2"
480p/index.m3u8
"""


def segments(*items: tuple[float, float, str]) -> list[TranscriptSegment]:
    return [TranscriptSegment(start=s, end=e, text=t) for s, e, t in items]


def test_webvtt_and_srt_round_trip_times_and_text():
    segs = segments((0.0, 1.5, "Hello there."), (3661.25, 3662.0, "a < b & c --> d"))
    vtt = to_webvtt(segs)
    assert vtt.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.500\nHello there.\n")
    cues = parse_webvtt(vtt)
    assert cues == [(0.0, 1.5, "Hello there."), (3661.25, 3662.0, "a &lt; b &amp; c -&gt; d")]
    srt = to_srt(segs)
    assert "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n" in srt
    assert "2\n01:01:01,250 --> 01:01:02,000\n" in srt
    assert to_webvtt([]) == "WEBVTT\n\n" and to_srt([]) == ""
    with pytest.raises(ValueError):
        parse_webvtt("1\n00:00:00,000 --> 00:00:01,000\nnot vtt\n")


def test_master_gets_one_subtitles_rendition_and_every_variant_refers_to_it():
    once = with_subtitles(MASTER, "en", "subtitles/en.m3u8")
    lines = once.splitlines()
    media = [line for line in lines if line.startswith("#EXT-X-MEDIA:")]
    assert media == [('#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",DEFAULT=YES,'
                      'AUTOSELECT=YES,FORCED=NO,URI="subtitles/en.m3u8"')]
    assert lines.index(media[0]) < min(i for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF"))
    variants = [line for line in lines if line.startswith("#EXT-X-STREAM-INF")]
    assert len(variants) == 2 and all(v.endswith(',SUBTITLES="subs"') for v in variants)
    assert "360p/index.m3u8" in lines and "480p/index.m3u8" in lines
    assert with_subtitles(once, "en", "subtitles/en.m3u8") == once  # idempotent
    german = with_subtitles(once, "de", "subtitles/de.m3u8")  # a re-run in another language replaces it
    assert german.count("#EXT-X-MEDIA:") == 1 and 'URI="subtitles/de.m3u8"' in german
    assert german.count('SUBTITLES="subs"') == 2
    with pytest.raises(ValueError):
        with_subtitles("#EXTM3U\n", "en", "x.m3u8")


def test_subtitles_media_playlist_lists_the_vtt_once():
    playlist = media_playlist("en.vtt", 9.2)
    assert playlist.splitlines() == ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:10",
                                     "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD", "#EXTINF:9.200,",
                                     "en.vtt", "#EXT-X-ENDLIST"]


def _ts_packet_with_pts(pts: int) -> bytes:
    pes = bytes([0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5,
                 0x21 | ((pts >> 29) & 0x0E), (pts >> 22) & 0xFF, 0x01 | ((pts >> 14) & 0xFE),
                 (pts >> 7) & 0xFF, 0x01 | ((pts << 1) & 0xFE)])
    header = bytes([0x47, 0x41, 0x00, 0x10])
    return (header + pes).ljust(188, b"\xff")


def test_first_pts_is_read_from_the_pes_header():
    pat = bytes([0x47, 0x40, 0x00, 0x10]).ljust(188, b"\xff")  # a table, not a PES: skipped
    assert first_pts(pat + _ts_packet_with_pts(126000)) == 126000
    assert first_pts(_ts_packet_with_pts(2**32 + 5)) == 2**32 + 5
    assert first_pts(b"") is None


def _wav(path: Path, samples: list[int]) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


def test_silence_is_found_by_peak(tmp_path):
    assert is_silent(_wav(tmp_path / "zero.wav", [0] * 16000))
    assert is_silent(_wav(tmp_path / "hiss.wav", [(-1) ** i * 40 for i in range(16000)]))
    assert not is_silent(_wav(tmp_path / "click.wav", [0] * 15000 + [-3000] + [0] * 999))


def test_engine_choice_prefers_the_configured_then_the_installed():
    class Engine:
        def __init__(self, name):
            self.name = name

    engines = {"faster-whisper": Engine("faster-whisper"), "other": Engine("other")}
    assert pick_engine(engines, "other").name == "other"
    assert pick_engine(engines, "whispercpp").name == "faster-whisper"
    with pytest.raises(PermanentProcessingError):
        pick_engine({}, "whispercpp")


def _chunk(index: int, duration: float, overlap: float, *items: tuple[float, float, str]) -> ChunkText:
    return ChunkText(index, duration, overlap, Transcription(text="", language="en", duration_seconds=duration,
                                                             segments=segments(*items), model="m", engine="e"))


def test_offsets_follow_durations_minus_overlaps():
    chunks = [_chunk(0, 10, 0), _chunk(1, 10, 2), _chunk(2, 5, 2)]
    assert chunk_offsets(chunks) == [0.0, 8.0, 16.0]


def test_stitching_removes_the_words_spoken_twice_in_each_overlap():
    chunks = [
        _chunk(0, 5.0, 0.0, (0.0, 4.9, "alpha bravo charlie delta echo foxtrot")),
        _chunk(1, 5.0, 1.5, (0.1, 4.9, "cho foxtrot golf hotel india juliet")),  # starts mid-word
        _chunk(2, 3.0, 1.5, (0.0, 2.9, "juliet kilo lima")),
    ]
    result = stitch(chunks)
    assert words(result.text) == ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
                                  "india", "juliet", "kilo", "lima"]
    assert result.duration_seconds == pytest.approx(10.0)
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts) and all(s.end <= result.duration_seconds for s in result.segments)
    assert all(a.end <= b.start for a, b in zip(result.segments, result.segments[1:]))


def test_stitching_without_repeated_words_cuts_at_the_middle_of_the_overlap():
    chunks = [_chunk(0, 4.0, 0.0, (0.0, 4.0, "one two three four")),
              _chunk(1, 4.0, 2.0, (0.0, 4.0, "five six seven eight"))]
    # chunk 1 starts at 2.0 s; the overlap [2, 4] is cut at 3.0: "four" (3.0-4.0) and "five" (2.0-3.0) go
    assert words(stitch(chunks).text) == ["one", "two", "three", "six", "seven", "eight"]
    assert words(stitch([_chunk(0, 4.0, 0.0), _chunk(1, 4.0, 1.0, (0, 1, "late"))]).text) == ["late"]
