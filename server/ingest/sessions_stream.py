"""Stream sessions (``mode: "stream"``): the chunks are MediaRecorder ``start(timeslice)`` blobs of ONE WebM or
fragmented-MP4 stream. Only chunk 0 carries the header (EBML header / init segment) and is sniffed against the
profile; the others are continuations (WebM clusters, MP4 fragments, or cut anywhere: blobs are not always
aligned), taken as they are — size limits still apply — and joined by concatenation plus a remux."""

from __future__ import annotations

from typing import Any

from mediasvc.ingest.sessions_multipart import ReceivedFile
from mediasvc.ingest.validation import Sniffed, check_content, check_declared, extension_of, sanitize_filename
from mediasvc.profiles import Profile

CONTINUATION = Sniffed("application/octet-stream", "unknown", ())
CONTINUATION_EXTENSION = "bin"


def is_stream(session: dict[str, Any]) -> bool:
    return session.get("mode") == "stream"


def check_stream_chunk(profile_name: str, profile: Profile, index: int, file: ReceivedFile) -> tuple[str, Sniffed]:
    """(extension, sniffed) for a stream chunk. Chunk 0 must sniff as a container the profile allows (a name
    without an extension, like MediaRecorder's ``blob``, takes the sniffed one); a continuation is not sniffed."""
    name = sanitize_filename(file.filename)
    declared = extension_of(name)
    if index == 0:
        if declared:
            check_declared(profile_name, profile, name, None)
        sniffed = check_content(profile_name, profile, declared, file.head)
        extension = declared or next(e for e in sniffed.extensions if profile.allows_format(e))
        return extension, sniffed
    return CONTINUATION_EXTENSION, CONTINUATION
