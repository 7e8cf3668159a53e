"""The profile of a tus upload: the one its ``Upload-Metadata`` names, or, for a generic tus client (Uppy,
tus-js-client, tuspy, mobile SDKs) that sends only ``filename`` and ``filetype``, the one
``[plugins.tus] default_profile`` gives: ``auto`` matches the type (``mediasvc.profiles.match_profiles``), a
profile name is used as is, ``required`` refuses the upload (422). Whichever way it was chosen, the first
bytes are sniffed against it (``mediasvc.ingest.tus_uploads.confirm_head``)."""

from __future__ import annotations

from typing import Literal

import msgspec

from mediasvc.errors import ValidationFailed
from mediasvc.ingest.tus_settings import DEFAULT_AUTO, DEFAULT_REQUIRED, tus_settings
from mediasvc.ingest.validation import extension_of, get_profile, sanitize_filename
from mediasvc.profiles import Profile, match_profiles
from mediasvc.settings import Settings

# The extension a file without one gets from its declared type (a browser Blob, a mobile SDK's stream).
MIME_EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
    "video/mp4": "mp4", "video/webm": "webm", "video/quicktime": "mov",
    "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav",
    "audio/mp4": "m4a", "audio/x-m4a": "m4a", "audio/ogg": "ogg", "audio/webm": "webm",
    "application/pdf": "pdf",
}


class Declared(msgspec.Struct, frozen=True):
    """What an upload's metadata comes to: its profile, how that was chosen, and its cleaned file name."""

    profile_name: str
    profile: Profile
    filename: str
    chosen_by: Literal["metadata", "setting", "auto"]


def declared_type(metadata: dict[str, str | None]) -> str:
    """The content type the client declares (``filetype``, or ``type`` as some clients name it)."""
    return (metadata.get("filetype") or metadata.get("type") or "").strip()[:200]


def resolve_profile(settings: Settings, metadata: dict[str, str | None], size: int | None) -> Declared:
    """The upload's profile and file name (not yet checked against the size or the extension: that is
    ``check_declared``). 422 when no profile is named and none can be chosen."""
    filename = sanitize_filename(metadata.get("filename") or metadata.get("name") or "")
    named = (metadata.get("profile") or "").strip()
    if named:
        return Declared(named, get_profile(settings, named), filename, "metadata")
    default = tus_settings(settings).default_profile
    if default == DEFAULT_REQUIRED:
        raise ValidationFailed("Upload-Metadata must carry 'profile'",
                               details={"available": sorted(settings.profiles)})
    mime = declared_type(metadata)
    if not extension_of(filename):
        extension = MIME_EXTENSIONS.get(mime.split(";", 1)[0].strip().lower())
        filename = f"{filename}.{extension}" if extension else filename
    if default != DEFAULT_AUTO:
        return Declared(default, get_profile(settings, default), filename, "setting")
    found = match_profiles(settings.profiles, extension=extension_of(filename), mime=mime, size=size)
    if not found:
        raise _no_match(settings, filename, mime)
    return Declared(found[0], settings.profiles[found[0]], filename, "auto")


def _no_match(settings: Settings, filename: str, mime: str) -> ValidationFailed:
    extension = extension_of(filename)
    allowed: dict[str, list[str]] = {}
    for profile in settings.profiles.values():
        formats = allowed.setdefault(profile.kind, [])
        formats.extend(f for f in profile.formats if f not in formats)
    what = " ".join(filter(None, [mime, f".{extension}" if extension else "(no extension)"]))
    return ValidationFailed(
        f"No profile accepts {what}: send 'profile' in Upload-Metadata (one of {sorted(settings.profiles)}), "
        f"or a filename and filetype of an accepted kind: "
        + "; ".join(f"{kind}: {' '.join(formats)}" for kind, formats in allowed.items()),
        details={"filename_extension": extension, "filetype": mime, "allowed": allowed,
                 "available": sorted(settings.profiles)},
    )
