"""Validation shared by every way media comes in: declared name and size first (before any byte is read), then the
sniffed type of the first bytes against the profile. File names are sanitized and never used as paths."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

import msgspec

from mediasvc.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from mediasvc.profiles import Profile
from mediasvc.settings import Settings
from mediasvc.text_rules import clean_name

SNIFF_BYTES = 64  # enough for every signature below


class Sniffed(msgspec.Struct, frozen=True):
    """What the first bytes say a file is."""

    mime: str
    kind: str  # video, audio, image, document, playlist, unknown
    extensions: tuple[str, ...]  # extensions this content may honestly carry
    # containers whose magic bytes cannot tell audio-only from video (ISO-BMFF, Matroska/WebM, Ogg)
    other_kinds: tuple[str, ...] = ()


UNKNOWN = Sniffed("application/octet-stream", "unknown", ())

_ISO_BRANDS_AUDIO = {b"M4A ", b"M4B ", b"M4P ", b"F4A "}
_ISO_BRANDS_QUICKTIME = {b"qt  "}


def sniff(head: bytes) -> Sniffed:
    """Identify content by magic bytes, never by its name."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image/png", "image", ("png",))
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image/jpeg", "image", ("jpg", "jpeg"))
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Sniffed("image/gif", "image", ("gif",))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image/webp", "image", ("webp",))
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Sniffed("audio/wav", "audio", ("wav",))
    if head.startswith(b"%PDF-"):
        return Sniffed("application/pdf", "document", ("pdf",))
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _ISO_BRANDS_AUDIO:
            return Sniffed("audio/mp4", "audio", ("m4a", "mp4"), ("video",))
        if brand in _ISO_BRANDS_QUICKTIME:
            return Sniffed("video/quicktime", "video", ("mov", "mp4"))
        return Sniffed("video/mp4", "video", ("mp4", "mov", "m4a"), ("audio",))
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: WebM or Matroska, audio-only or not
        return Sniffed("video/webm", "video", ("webm", "mkv"), ("audio",))
    if head.startswith(b"OggS"):
        return Sniffed("audio/ogg", "audio", ("ogg", "oga", "opus"), ("video",))
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return Sniffed("audio/mpeg", "audio", ("mp3",))
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"#EXTM3U"):
        return Sniffed("application/vnd.apple.mpegurl", "playlist", ("m3u8",))
    return UNKNOWN


def sanitize_filename(name: str, *, fallback: str = "upload") -> str:
    """The last path segment, NFC-normalized, without control or path characters, bidi controls or other invisible
    format characters (``clean_name``), at most 255 bytes."""
    name = clean_name(unicodedata.normalize("NFC", name or "")).replace("\\", "/")
    name = PurePosixPath(name).name
    name = re.sub(r"[\x00-\x1f\x7f/:*?\"<>|]", "_", name).strip(" .")
    while len(name.encode()) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:-1] + dot + ext) if stem else name[:-1]
    return name or fallback


def extension_of(name: str) -> str:
    return PurePosixPath(name).suffix.lower().lstrip(".")


def get_profile(settings: Settings, name: str) -> Profile:
    profile = settings.profiles.get(name)
    if profile is None:
        raise ValidationFailed(f"Unknown profile {name!r}",
                               details={"profile": name, "available": sorted(settings.profiles)})
    return profile


def check_declared(profile_name: str, profile: Profile, filename: str, size: int | None) -> str:
    """Checks that need no bytes: the extension is allowed and the declared size fits. Returns the extension."""
    extension = extension_of(filename)
    if not profile.allows_format(extension):
        raise UnsupportedMediaType(
            f"Profile {profile_name!r} does not accept .{extension or '(no extension)'} files",
            details={"profile": profile_name, "allowed": profile.formats, "extension": extension},
        )
    if size is not None:
        if size < 0:
            raise ValidationFailed("Size must not be negative", details={"size": size})
        if size > profile.max_bytes:
            raise PayloadTooLarge(
                f"{size} bytes is over the {profile_name!r} limit of {profile.max_bytes} bytes",
                details={"profile": profile_name, "max_bytes": profile.max_bytes, "size": size},
            )
    return extension


def check_content(profile_name: str, profile: Profile, extension: str, head: bytes) -> Sniffed:
    """The first bytes must be a format the profile allows and agree with the file's extension."""
    found = sniff(head)
    allowed = [ext for ext in found.extensions if profile.allows_format(ext)]
    if profile.kind not in (found.kind, *found.other_kinds) or not allowed:
        raise UnsupportedMediaType(
            f"The file's content is {found.mime}, which profile {profile_name!r} does not accept",
            details={"profile": profile_name, "sniffed": found.mime, "allowed": profile.formats},
        )
    if extension and extension not in found.extensions:
        raise UnsupportedMediaType(
            f"The file is named .{extension} but its content is {found.mime}",
            details={"extension": extension, "sniffed": found.mime},
        )
    if profile.kind != found.kind:  # e.g. audio-only WebM in an audio profile: audio/webm
        return msgspec.structs.replace(found, kind=profile.kind,
                                       mime=found.mime.replace(f"{found.kind}/", f"{profile.kind}/", 1))
    return found


def problems_for(profile_name: str, profile: Profile, filename: str, size: int | None,
                 head: bytes) -> tuple[Sniffed, list[dict[str, str]]]:
    """Every problem at once, for the validate endpoint (the upload paths stop at the first)."""
    problems: list[dict[str, str]] = []
    extension = extension_of(filename)
    for check in (lambda: check_declared(profile_name, profile, filename, size),
                  lambda: check_content(profile_name, profile, extension, head)):
        try:
            check()
        except (UnsupportedMediaType, PayloadTooLarge, ValidationFailed) as exc:
            problems.append({"code": exc.code, "message": exc.message})
    return sniff(head), problems
