"""File-type profiles: what a kind of upload may be, how big, where it is stored and how it is processed."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

MediaKind = Literal["video", "audio", "image", "document"]

MB = 1024 * 1024


class Profile(msgspec.Struct, forbid_unknown_fields=True):
    kind: MediaKind
    formats: list[str]  # allowed extensions, lower case, no dot
    max_bytes: int
    bucket: str
    steps: list[str] = []  # processor names, run in this order
    # steps that are skipped when no installed plugin provides them; any other missing step fails start-up
    optional_steps: list[str] = []
    public: bool = False  # playback without a token
    description: str = ""
    # days after upload when a ready asset's original is deleted (renditions stay); None keeps it forever
    original_retention_days: Annotated[int, Meta(ge=1)] | None = None

    def allows_format(self, extension: str) -> bool:
        return extension.lower().lstrip(".") in self.formats


def kind_of_mime(mime: str) -> str | None:
    """The media kind a declared MIME type names (``image/png`` → image, ``application/pdf`` → document); None
    for a type that names no kind (empty, ``application/octet-stream``, anything else)."""
    essence = mime.split(";", 1)[0].strip().lower()
    major = essence.partition("/")[0]
    if major in ("video", "audio", "image"):
        return major
    return "document" if essence == "application/pdf" else None


def match_profiles(profiles: dict[str, Profile], *, extension: str, mime: str = "",
                   size: int | None = None) -> list[str]:
    """The profiles, in settings order, that an upload named ``*.extension`` and declared as ``mime`` fits:
    the extension is one of the profile's formats and the MIME type's kind (when it names one) is the
    profile's kind. Those whose ``max_bytes`` hold ``size`` come first. Empty when the extension is empty."""
    extension = extension.lower().lstrip(".")
    kind = kind_of_mime(mime)
    found = [name for name, profile in profiles.items()
             if extension and profile.allows_format(extension) and kind in (None, profile.kind)]
    if size is None:
        return found
    return sorted(found, key=lambda name: profiles[name].max_bytes < size)  # stable: settings order kept


# Which extra installs the plugin behind a built-in step (for the start-up error a missing step gets).
STEP_EXTRAS: dict[str, str] = {
    **dict.fromkeys(("probe", "mp4", "hls", "thumbnail", "audio"), "mediasvc-video"),
    **dict.fromkeys(("image", "pdf_thumbnail"), "mediasvc-images"),
    "transcribe": "mediasvc[transcription]",
    "analyze": "mediasvc[analysis]",
}


def missing_step_message(profile: str, step: str, available: list[str]) -> str:
    extra = STEP_EXTRAS.get(step)
    hint = f"install it with: pip install '{extra}'" if extra else "install the plugin that provides it"
    return (f"Profile {profile!r} runs step {step!r}, but no installed plugin provides it: {hint} "
            f"(or list it in profiles.{profile}.optional_steps to skip it). Installed steps: {available}")


# The interview-platform design: answers recorded as video or audio, images attached to questions, avatars,
# and documents attached to an interview.
DEFAULT_PROFILES: dict[str, Profile] = {
    "video_response": Profile(
        kind="video",
        formats=["mp4", "webm", "mov"],
        max_bytes=500 * MB,
        bucket="video-responses",
        steps=["probe", "mp4", "hls", "thumbnail", "audio", "transcribe"],
        optional_steps=["transcribe"],  # mediasvc[transcription]
        description="A candidate's recorded video answer.",
    ),
    "audio_response": Profile(
        kind="audio",
        formats=["mp3", "wav", "m4a", "ogg", "webm"],
        max_bytes=100 * MB,
        bucket="audio-responses",
        steps=["probe", "audio", "transcribe"],
        optional_steps=["transcribe"],
        description="A candidate's recorded audio answer.",
    ),
    "question_image": Profile(
        kind="image",
        formats=["jpg", "jpeg", "png", "gif", "webp"],
        max_bytes=10 * MB,
        bucket="question-images",
        steps=["image"],
        public=True,
        description="An image shown with an interview question.",
    ),
    "avatar": Profile(
        kind="image",
        formats=["jpg", "jpeg", "png", "gif", "webp"],
        max_bytes=5 * MB,
        bucket="avatars",
        steps=["image"],
        public=True,
        description="A user's profile picture.",
    ),
    "interview_attachment": Profile(
        kind="document",
        formats=["pdf"],
        max_bytes=50 * MB,
        bucket="attachments",
        steps=["pdf_thumbnail"],
        description="A document attached to an interview (CV, brief).",
    ),
}
