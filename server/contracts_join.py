"""The chunk-joiner contract (``register_chunk_joiners``): how a recording session's chunks become one recording.
Re-exported by ``mediasvc.contracts`` and ``mediasvc.plugin``."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import msgspec


class JoinError(Exception):
    """The chunks cannot be joined (no decodable media, nothing in common); retrying will not help. The message
    is shown to clients and operators as the session's failure reason: say what is wrong, not where (no paths)."""


class JoinPart(msgspec.Struct):
    """One chunk file to join, in order: ``trim`` seconds (its overlap with the previous chunk) are dropped from
    its start. ``after_gap``: chunks are missing before this one (a session completed with gaps)."""

    path: Path
    trim: float = 0.0
    after_gap: bool = False


class JoinResult(msgspec.Struct):
    mode: str  # how it was joined: "remux" (packets copied) or "reencode"
    duration: float  # seconds of media written
    parts: int
    extension: str  # of the file written: the chunks' for a remux, mp4 or m4a for a re-encode
    # stream joins around missing chunks: (start, end) seconds of each hole in the result's timeline, in order
    gaps: list[tuple[float, float]] = []


@runtime_checkable
class ChunkJoiner(Protocol):
    """Joins a recording session's chunk files into one recording, overlaps trimmed (blocking: the core runs it in
    a thread). Chunk files are local and were sniffed as audio/video when they were uploaded.

    A joiner may also have ``join_stream(parts, out_path, extension, *, kind) -> JoinResult`` for ``stream``
    sessions (MediaRecorder timeslice blobs): the parts are consecutive pieces of one WebM / fragmented-MP4 byte
    stream, only the first with the header; the joiner concatenates them and remuxes (no re-encode), writing
    duration and an index (cues, moov) so the result seeks; parts ``after_gap`` resume at their next
    cluster/fragment and the hole is reported in ``JoinResult.gaps``. Without it, stream sessions fail to join
    with a reason."""

    name: str  # unique: "pyav"

    def join(self, parts: list[JoinPart], out_path: Path, extension: str, *, kind: str) -> JoinResult:
        """Write the joined recording to ``out_path`` (container chosen by ``extension``, the chunks' own) and say
        what was written; ``kind`` is the profile's (``video`` or ``audio``: what a re-encode keeps). A result
        whose ``extension`` differs from the one asked for was still written to ``out_path``. Raises
        ``JoinError`` when the chunks cannot be joined."""
        ...
