"""Stitching a recording session's transcript from its chunks' transcripts (pure functions).

Chunk ``k`` starts at ``offset[k] = offset[k-1] + duration[k-1] - overlap[k]`` on the session clock, and its first
``overlap[k]`` seconds repeat the end of chunk ``k-1``. Words get times on the session clock (interpolated inside
their segment by character count). Around each seam, the tail of the text so far and the head of the next chunk
are aligned: the longest run of equal words whose times agree. Everything of the earlier chunk up to the end of
that run is kept, and the later chunk from just after it, so the words spoken twice appear once (the later chunk
wins inside the overlap: its words there are not cut off mid-sentence). With no such run, the seam is cut by time
at the middle of the overlap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mediasvc.plugin import Transcription, TranscriptSegment

SEAM_MARGIN = 1.5  # seconds around the overlap searched for the repeated words
TIME_TOLERANCE = 2.0  # how far apart (seconds) two equal words may be and still be the same utterance
_NORMAL = re.compile(r"[^a-z0-9']+")


@dataclass(frozen=True)
class ChunkText:
    sequence_index: int
    duration: float  # seconds of the chunk
    overlap: float  # seconds at its head repeating the previous chunk (0 when that chunk is missing)
    transcription: Transcription


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    chunk: int
    segment: int
    confidence: float | None

    @property
    def key(self) -> str:
        return _NORMAL.sub("", self.text.lower())

    @property
    def middle(self) -> float:
        return (self.start + self.end) / 2


def segment_words(segment: TranscriptSegment, offset: float, chunk: int, index: int) -> list[Word]:
    tokens = segment.text.split()
    if not tokens:
        return []
    span = max(segment.end - segment.start, 0.0)
    total = sum(len(t) + 1 for t in tokens)
    words, before = [], 0
    for token in tokens:
        start = segment.start + span * before / total
        before += len(token) + 1
        end = segment.start + span * before / total
        words.append(Word(token, offset + start, offset + end, chunk, index, segment.confidence))
    return words


def chunk_offsets(chunks: Sequence[ChunkText]) -> list[float]:
    offsets, clock = [], 0.0
    for position, chunk in enumerate(chunks):
        if position:
            clock += chunks[position - 1].duration - chunk.overlap
        offsets.append(max(clock, 0.0))
    return offsets


def _best_run(tail: list[Word], head: list[Word]) -> tuple[int, int, int] | None:
    """(end in tail, end in head, length) of the longest run of equal words with agreeing times."""
    best: tuple[int, int, int] | None = None
    lengths = [[0] * (len(head) + 1) for _ in range(len(tail) + 1)]
    for i, a in enumerate(tail, 1):
        for j, b in enumerate(head, 1):
            if a.key and a.key == b.key and abs(a.middle - b.middle) <= TIME_TOLERANCE:
                lengths[i][j] = lengths[i - 1][j - 1] + 1
                if best is None or lengths[i][j] > best[2]:
                    best = (i - 1, j - 1, lengths[i][j])
    return best


def join_seam(kept: list[Word], following: list[Word], seam_start: float, overlap: float) -> list[Word]:
    """``kept`` (the text so far) joined with the next chunk's ``following`` words at a seam that starts at
    ``seam_start`` on the session clock and lasts ``overlap`` seconds."""
    if overlap <= 0 or not kept or not following:
        return kept + following
    tail_from = next((i for i, w in enumerate(kept) if w.end >= seam_start - SEAM_MARGIN), len(kept))
    head_to = next((j for j, w in enumerate(following) if w.start > seam_start + overlap + SEAM_MARGIN),
                   len(following))
    run = _best_run(kept[tail_from:], following[:head_to])
    if run is not None:
        end_tail, end_head, _ = run
        return kept[:tail_from + end_tail + 1] + following[end_head + 1:]
    cut = seam_start + overlap / 2
    return [w for w in kept if w.middle < cut] + [w for w in following if w.middle >= cut]


def _segments(words: list[Word]) -> list[TranscriptSegment]:
    """Kept words regrouped by the segment they came from."""
    segments: list[TranscriptSegment] = []
    group: list[Word] = []
    for word in [*words, None]:
        if group and (word is None or (word.chunk, word.segment) != (group[0].chunk, group[0].segment)):
            start = max(group[0].start, segments[-1].end if segments else 0.0)  # no overlapping cues
            segments.append(TranscriptSegment(start=round(start, 3), end=round(max(group[-1].end, start), 3),
                                              text=" ".join(w.text for w in group),
                                              confidence=group[0].confidence))
            group = []
        if word is not None:
            group.append(word)
    return segments


def stitch(chunks: Sequence[ChunkText]) -> Transcription:
    """One transcript for the session from its chunks' transcripts, in sequence order."""
    ordered = sorted(chunks, key=lambda c: c.sequence_index)
    offsets = chunk_offsets(ordered)
    words: list[Word] = []
    for position, (chunk, offset) in enumerate(zip(ordered, offsets, strict=True)):
        chunk_words = [w for index, segment in enumerate(chunk.transcription.segments)
                       for w in segment_words(segment, offset, position, index)]
        words = join_seam(words, chunk_words, offset, chunk.overlap if position else 0.0)
    duration = offsets[-1] + ordered[-1].duration if ordered else 0.0
    segments = _segments(words)
    scored = [s.confidence for s in segments if s.confidence is not None]
    first = ordered[0].transcription if ordered else None
    return Transcription(
        text=" ".join(w.text for w in words), language=first.language if first else "",
        duration_seconds=round(duration, 3), segments=segments, model=first.model if first else "",
        engine=first.engine if first else "", confidence=round(sum(scored) / len(scored), 4) if scored else None,
    )
