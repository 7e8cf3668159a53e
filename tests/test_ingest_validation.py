"""Sniffing by magic bytes and the checks every upload path shares."""

from __future__ import annotations

import pytest

from mediasvc.errors import PayloadTooLarge, UnsupportedMediaType
from mediasvc.ingest.validation import check_content, check_declared, sanitize_filename, sniff
from mediasvc.settings import load_settings

PROFILES = load_settings(env={}).profiles
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
M4A = b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A mp42isom"
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@pytest.mark.parametrize(("head", "mime"), [
    (MP4, "video/mp4"), (M4A, "audio/mp4"), (WEBM, "video/webm"), (PNG, "image/png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"), (b"GIF89a\x01\x00", "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"), (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
    (b"%PDF-1.7\n", "application/pdf"), (b"OggS\x00\x02", "audio/ogg"), (b"ID3\x04\x00", "audio/mpeg"),
    (b"#EXTM3U\n#EXT-X-VERSION:3", "application/vnd.apple.mpegurl"), (b"hello world", "application/octet-stream"),
])
def test_sniff_by_magic_bytes(head, mime):
    assert sniff(head).mime == mime


def test_audio_only_containers_are_accepted_by_audio_profiles():
    audio = PROFILES["audio_response"]
    assert check_content("audio_response", audio, "webm", WEBM).mime == "audio/webm"
    assert check_content("audio_response", audio, "m4a", MP4).mime == "audio/mp4"
    assert check_content("video_response", PROFILES["video_response"], "webm", WEBM).mime == "video/webm"


@pytest.mark.parametrize(("profile", "ext", "head"), [
    ("video_response", "mp4", PNG),  # PNG bytes named .mp4
    ("video_response", "mp4", b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd"),  # a playlist disguised as video
    ("avatar", "png", MP4),
    ("video_response", "mov", WEBM),  # real video, wrong extension for its content
    ("interview_attachment", "pdf", b"\x00" * 16),
])
def test_content_that_is_not_what_the_profile_allows_is_415(profile, ext, head):
    with pytest.raises(UnsupportedMediaType):
        check_content(profile, PROFILES[profile], ext, head)


def test_declared_checks_run_before_any_byte():
    video = PROFILES["video_response"]
    assert check_declared("video_response", video, "answer.MP4", 10) == "mp4"
    with pytest.raises(PayloadTooLarge):
        check_declared("video_response", video, "answer.mp4", video.max_bytes + 1)
    with pytest.raises(UnsupportedMediaType):
        check_declared("video_response", video, "answer.exe", 10)


@pytest.mark.parametrize(("raw", "clean"), [
    ("../../etc/passwd", "passwd"), ("C:\\Users\\me\\cv.pdf", "cv.pdf"), ("a\x00b.mp4", "a_b.mp4"),
    ("", "upload"), ("..", "upload"), ("é" * 200 + ".mp4", None),
])
def test_file_names_are_sanitized(raw, clean):
    result = sanitize_filename(raw)
    assert "/" not in result and "\x00" not in result and len(result.encode()) <= 255
    if clean is not None:
        assert result == clean
    else:
        assert result.endswith(".mp4")
